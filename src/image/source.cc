#include "image/source.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "base/fs.h"
#include "image/layer_plan.h"
#include "image/tar_reader.h"

namespace ember::image {
namespace {

using nlohmann::json;

// Members of an image archive worth keeping in memory while deciding its kind: metadata JSON and
// small blobs (manifests, configs). Layers are copied to files instead.
constexpr int64_t kSmallMember = 1 << 20;

Result<json> ParseJson(std::string_view text, const std::string& what) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Fail(ErrorCode::kCorrupt, what + " is not valid JSON");
  return doc;
}

const char* HostArch() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#else
  return "";
#endif
}

struct OuterScan {
  std::set<std::string> members;
  std::map<std::string, std::string> small;  // normalized path -> content
};

Result<OuterScan> ScanOuter(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto a, OpenTar(path));
  OuterScan scan;
  struct archive_entry* e;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return Fail(ErrorCode::kCorrupt, "read " + path + ": " + archive_error_string(a.get()));
    }
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != nullptr) continue;
    auto name = NormalizeEntryPath(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
    if (!name) continue;  // not a member an image manifest could name
    scan.members.insert(*name);
    bool metadata = name->find('/') == std::string::npos || name->rfind("blobs/", 0) == 0;
    if (metadata && archive_entry_size(e) <= kSmallMember) {
      std::string content(static_cast<size_t>(archive_entry_size(e)), '\0');
      la_ssize_t n = archive_read_data(a.get(), content.data(), content.size());
      if (n < 0)
        return Fail(ErrorCode::kCorrupt, "read " + path + ": " + archive_error_string(a.get()));
      content.resize(static_cast<size_t>(n));
      scan.small[*name] = std::move(content);
    }
  }
  return scan;
}

// Copies members `wanted` (normalized names) to files; returns name -> file path.
Result<std::map<std::string, std::string>> ExtractMembers(const std::string& path,
                                                          const std::vector<std::string>& wanted,
                                                          const std::string& work_dir) {
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (files.count(wanted[i]) == 0)
      files[wanted[i]] = work_dir + "/layer-" + std::to_string(i) + ".tar";
  }
  EMBER_ASSIGN_OR_RETURN(auto a, OpenTar(path));
  struct archive_entry* e;
  size_t found = 0;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return Fail(ErrorCode::kCorrupt, "read " + path + ": " + archive_error_string(a.get()));
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    auto name = NormalizeEntryPath(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
    if (!name) continue;
    auto it = files.find(*name);
    if (it == files.end() || PathExists(it->second)) continue;
    EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(it->second, O_WRONLY | O_CREAT | O_EXCL, 0600));
    if (archive_read_data_into_fd(a.get(), fd.get()) != ARCHIVE_OK) {
      return Fail(ErrorCode::kCorrupt,
                  "copy " + *name + " out of " + path + ": " + archive_error_string(a.get()));
    }
    ++found;
  }
  for (const auto& [name, file] : files) {
    if (!PathExists(file))
      return Fail(ErrorCode::kCorrupt, path + ": layer " + name + " is missing from the archive");
  }
  (void)found;
  return files;
}

}  // namespace

std::string_view SourceKindName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kDirectory:
      return "directory";
    case SourceKind::kDockerArchive:
      return "docker-archive";
    case SourceKind::kOciArchive:
      return "oci-archive";
    case SourceKind::kTarball:
      return "tarball";
  }
  return "?";
}

Result<DockerManifest> ParseDockerManifest(std::string_view text) {
  EMBER_ASSIGN_OR_RETURN(auto doc, ParseJson(text, "manifest.json"));
  if (!doc.is_array() || doc.empty() || !doc[0].is_object()) {
    return Fail(ErrorCode::kCorrupt, "manifest.json: expected a non-empty array of images");
  }
  const json& image = doc[0];
  DockerManifest manifest;
  if (!image.contains("Layers") || !image["Layers"].is_array()) {
    return Fail(ErrorCode::kCorrupt, "manifest.json: the image has no \"Layers\" list");
  }
  for (const auto& layer : image["Layers"]) {
    if (!layer.is_string())
      return Fail(ErrorCode::kCorrupt, "manifest.json: a layer is not a path");
    auto normalized = NormalizeEntryPath(layer.get<std::string>());
    if (!normalized || normalized->empty()) {
      return Fail(ErrorCode::kCorrupt,
                  "manifest.json: bad layer path '" + layer.get<std::string>() + "'");
    }
    manifest.layers.push_back(*normalized);
  }
  if (image.contains("RepoTags") && image["RepoTags"].is_array()) {
    for (const auto& tag : image["RepoTags"]) {
      if (tag.is_string()) manifest.repo_tags.push_back(tag.get<std::string>());
    }
  }
  return manifest;
}

Result<std::string> OciBlobPath(const std::string& digest) {
  auto colon = digest.find(':');
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < digest.size();
  for (size_t i = 0; ok && i < digest.size(); ++i) {
    char c = digest[i];
    if (i < colon) ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (i > colon) ok = (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
  }
  if (!ok) return Fail(ErrorCode::kCorrupt, "bad OCI digest '" + digest + "'");
  return "blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

Result<std::vector<std::string>> ResolveOciLayers(
    std::string_view index_json,
    const std::function<Result<std::string>(const std::string& digest)>& read_blob,
    std::string* ref_name) {
  EMBER_ASSIGN_OR_RETURN(auto doc, ParseJson(index_json, "index.json"));
  // Indexes nest (skopeo writes index -> manifest; multi-arch images add a level); bounded depth.
  for (int depth = 0; depth < 4; ++depth) {
    if (doc.contains("layers") && doc["layers"].is_array()) {
      std::vector<std::string> layers;
      for (const auto& layer : doc["layers"]) {
        if (!layer.is_object() || !layer.contains("digest") || !layer["digest"].is_string()) {
          return Fail(ErrorCode::kCorrupt, "OCI manifest: a layer has no digest");
        }
        layers.push_back(layer["digest"].get<std::string>());
      }
      return layers;
    }
    if (!doc.contains("manifests") || !doc["manifests"].is_array() || doc["manifests"].empty()) {
      return Fail(ErrorCode::kCorrupt, "OCI index: no manifests");
    }
    const json* chosen = &doc["manifests"][0];
    for (const auto& m : doc["manifests"]) {
      if (m.contains("platform") && m["platform"].is_object() &&
          m["platform"].value("architecture", "") == HostArch() &&
          m["platform"].value("os", "linux") == "linux") {
        chosen = &m;
        break;
      }
    }
    if (ref_name != nullptr && ref_name->empty() && chosen->contains("annotations") &&
        (*chosen)["annotations"].is_object()) {
      *ref_name = (*chosen)["annotations"].value("org.opencontainers.image.ref.name", "");
    }
    if (!chosen->contains("digest") || !(*chosen)["digest"].is_string()) {
      return Fail(ErrorCode::kCorrupt, "OCI index: a manifest entry has no digest");
    }
    std::string digest = (*chosen)["digest"].get<std::string>();
    EMBER_ASSIGN_OR_RETURN(auto blob, read_blob(digest));
    EMBER_ASSIGN_OR_RETURN(doc, ParseJson(blob, "OCI blob " + digest));
  }
  return Fail(ErrorCode::kCorrupt, "OCI index: manifests nest too deeply");
}

Result<PreparedSource> PrepareSource(const std::string& path, const std::string& work_dir) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FailErrno("import " + path);
  PreparedSource source;
  if (S_ISDIR(st.st_mode)) {
    source.kind = SourceKind::kDirectory;
    return source;
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(ErrorCode::kInvalidArgument,
                "import " + path + ": not a regular file or directory");
  }
  EMBER_ASSIGN_OR_RETURN(auto scan, ScanOuter(path));
  std::vector<std::string> members;
  if (auto manifest = scan.small.find("manifest.json"); manifest != scan.small.end()) {
    source.kind = SourceKind::kDockerArchive;
    EMBER_ASSIGN_OR_RETURN(auto parsed, ParseDockerManifest(manifest->second));
    members = parsed.layers;
    if (!parsed.repo_tags.empty()) source.suggested_name = parsed.repo_tags[0];
  } else if (scan.small.count("oci-layout") != 0 && scan.small.count("index.json") != 0) {
    source.kind = SourceKind::kOciArchive;
    auto read_blob = [&scan](const std::string& digest) -> Result<std::string> {
      EMBER_ASSIGN_OR_RETURN(auto blob_path, OciBlobPath(digest));
      auto it = scan.small.find(blob_path);
      if (it == scan.small.end())
        return Fail(ErrorCode::kCorrupt, "OCI blob " + blob_path + " is missing");
      return it->second;
    };
    EMBER_ASSIGN_OR_RETURN(auto digests, ResolveOciLayers(scan.small["index.json"], read_blob,
                                                          &source.suggested_name));
    for (const auto& digest : digests) {
      EMBER_ASSIGN_OR_RETURN(auto blob_path, OciBlobPath(digest));
      members.push_back(blob_path);
    }
  } else {
    source.kind = SourceKind::kTarball;
    source.layer_files = {path};
    return source;
  }
  for (const auto& member : members) {
    if (scan.members.count(member) == 0) {
      return Fail(ErrorCode::kCorrupt, path + ": layer " + member + " is missing from the archive");
    }
  }
  EMBER_ASSIGN_OR_RETURN(auto files, ExtractMembers(path, members, work_dir));
  for (const auto& member : members) source.layer_files.push_back(files[member]);
  return source;
}

}  // namespace ember::image
