#include "image/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "base/mounts.h"
#include "base/units.h"
#include "image/erofs.h"
#include "image/locks.h"
#include "image/name.h"

namespace ember::image {
namespace {

using nlohmann::json;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsDigest(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::string RecordToJson(const ImageRecord& r, int indent) {
  json doc = {{"name", r.name},       {"digest", r.digest}, {"size", r.size},
              {"created", r.created}, {"source", r.source}, {"kind", r.kind},
              {"layers", r.layers},   {"files", r.files},   {"blob", r.blob_path}};
  if (!r.recipe.empty()) doc["recipe"] = r.recipe;
  return doc.dump(indent);
}

StagingDir& StagingDir::operator=(StagingDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    lock_path_ = std::move(other.lock_path_);
    lock_ = std::move(other.lock_);
  }
  return *this;
}

void StagingDir::Remove() {
  if (path_.empty()) return;
  DetachMountsUnder(path_);
  if (auto removed = RemoveTree(path_); !removed) {
    spdlog::warn("remove staging dir: {}", removed.error().ToString());
  }
  ::unlink(lock_path_.c_str());
  lock_.reset();
  path_.clear();
}

std::string Store::BlobPath(const std::string& digest) const {
  return data_dir_ + "/images/" + digest + ".erofs";
}
std::string Store::RefPath(const std::string& name) const {
  return data_dir_ + "/refs/" + name + ".json";
}

Result<UniqueFd> Store::LockStore() const { return LockPath(data_dir_ + "/lock", LOCK_EX); }

Result<Store> Store::Open(const std::string& data_dir_arg, bool maintain) {
  std::string data_dir = data_dir_arg;
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  if (data_dir.empty()) return Fail(ErrorCode::kInvalidArgument, "the data dir is an empty path");
  Store store(data_dir);
  auto usable = [&]() -> Status {
    for (const char* sub : {"/images", "/refs", "/tmp"}) EMBER_TRY(MakeDirs(data_dir + sub, 0700));
    if (::access(data_dir.c_str(), W_OK) != 0) return FailErrno("write to " + data_dir);
    if (!maintain) return Ok();
    EMBER_ASSIGN_OR_RETURN(auto lock, store.LockStore());
    EMBER_TRY(store.CleanTmp());
    return store.CollectUnreferencedBlobs();
  }();
  if (!usable) {
    return Fail(std::move(usable).error().Context("image store in " + data_dir + " is not usable"));
  }
  return store;
}

Status Store::CleanTmp() const {
  std::string tmp = data_dir_ + "/tmp";
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(tmp));
  for (const auto& name : names) {
    if (EndsWith(name, ".lock")) continue;
    std::string path = tmp + "/" + name;
    auto lock = LockPath(path + ".lock", LOCK_EX | LOCK_NB);
    if (!lock) continue;  // its owner is still at work
    spdlog::info("removing stale staging dir {}", path);
    DetachMountsUnder(path);
    EMBER_TRY(RemoveTree(path));
    ::unlink((path + ".lock").c_str());
  }
  // Lock files whose directory is gone (the owner died between the two steps).
  EMBER_ASSIGN_OR_RETURN(names, ListDirectory(tmp));
  for (const auto& name : names) {
    if (!EndsWith(name, ".lock")) continue;
    std::string path = tmp + "/" + name;
    if (PathExists(path.substr(0, path.size() - 5))) continue;
    if (auto lock = LockPath(path, LOCK_EX | LOCK_NB)) ::unlink(path.c_str());
  }
  // Temp files of ref writes that never got renamed (refs are only written under the store lock).
  EMBER_ASSIGN_OR_RETURN(names, ListDirectory(data_dir_ + "/refs"));
  for (const auto& name : names) {
    if (name.find(".json.tmp.") != std::string::npos)
      ::unlink((data_dir_ + "/refs/" + name).c_str());
  }
  return Ok();
}

// A blob nobody names is the remainder of a crash between blob rename and ref write (or of a
// replaced image): unreachable, so removed.
Status Store::CollectUnreferencedBlobs() const {
  std::set<std::string> referenced;
  EMBER_ASSIGN_OR_RETURN(auto records, List());
  for (const auto& r : records) referenced.insert(r.digest);
  EMBER_ASSIGN_OR_RETURN(auto blobs, ListDirectory(data_dir_ + "/images"));
  for (const auto& blob : blobs) {
    std::string digest = EndsWith(blob, ".erofs") ? blob.substr(0, blob.size() - 6) : "";
    if (!IsDigest(digest) || referenced.count(digest) != 0) continue;
    spdlog::info("removing unreferenced blob {}", blob);
    ::unlink((data_dir_ + "/images/" + blob).c_str());
  }
  return Ok();
}

Result<StagingDir> Store::CreateStaging(std::string_view purpose) const {
  std::string path = data_dir_ + "/tmp/" + std::string(purpose) + "-" + std::to_string(::getpid()) +
                     "-" + RandomHex();
  // The lock comes first: a staging dir is never visible without its owner's lock held.
  EMBER_ASSIGN_OR_RETURN(auto lock, LockPath(path + ".lock", LOCK_EX));
  if (::mkdir(path.c_str(), 0700) != 0) {
    ::unlink((path + ".lock").c_str());
    return FailErrno("create staging dir " + path);
  }
  return StagingDir(path, path + ".lock", std::move(lock));
}

Result<ImageRecord> Store::ReadRef(const std::string& name) const {
  std::string path = RefPath(name);
  auto text = ReadFile(path);
  if (!text) {
    if (text.error().sys_errno() == ENOENT) {
      return Fail(ErrorCode::kNotFound, "image '" + name +
                                            "' not found (ember image ls lists images; "
                                            "ember image build python3.11 makes one)");
    }
    return Fail(std::move(text).error());
  }
  json doc = json::parse(*text, nullptr, false);
  auto corrupt = [&] {
    return Fail(ErrorCode::kCorrupt, "image '" + name + "': ref file " + path + " is corrupt");
  };
  if (doc.is_discarded() || !doc.is_object()) return corrupt();
  ImageRecord r;
  r.name = doc.value("name", "");
  r.digest = doc.value("digest", "");
  if (r.name != name || !IsDigest(r.digest) || !doc.contains("size") ||
      !doc["size"].is_number_unsigned()) {
    return corrupt();
  }
  r.size = doc["size"].get<uint64_t>();
  r.created = doc.value("created", "");
  r.source = doc.value("source", "");
  r.kind = doc.value("kind", "");
  r.recipe = doc.value("recipe", "");
  r.layers = doc.value("layers", 0u);
  r.files = doc.value("files", uint64_t{0});
  r.blob_path = BlobPath(r.digest);
  return r;
}

Result<ImageRecord> Store::Get(const std::string& name) const {
  EMBER_TRY(ValidateImageName(name));
  EMBER_ASSIGN_OR_RETURN(auto record, ReadRef(name));
  struct stat st {};
  if (::stat(record.blob_path.c_str(), &st) != 0) {
    return Fail(ErrorCode::kCorrupt,
                "image '" + name + "': blob " + record.blob_path + " is missing");
  }
  if (static_cast<uint64_t>(st.st_size) != record.size) {
    return Fail(ErrorCode::kCorrupt, "image '" + name + "': blob " + record.blob_path + " has " +
                                         std::to_string(st.st_size) + " bytes, expected " +
                                         std::to_string(record.size));
  }
  return record;
}

Result<std::vector<ImageRecord>> Store::List() const {
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(data_dir_ + "/refs"));
  std::vector<ImageRecord> records;
  for (const auto& file : names) {
    if (!EndsWith(file, ".json")) continue;
    std::string name = file.substr(0, file.size() - 5);
    auto record = ReadRef(name);
    if (!record) {
      spdlog::warn("{}", record.error().ToString());
      continue;
    }
    records.push_back(std::move(*record));
  }
  std::sort(records.begin(), records.end(),
            [](const ImageRecord& a, const ImageRecord& b) { return a.name < b.name; });
  return records;
}

Result<Store::Committed> Store::Commit(const std::string& erofs_file, ImageRecord meta,
                                       bool replace) {
  EMBER_TRY(ValidateImageName(meta.name));
  EMBER_ASSIGN_OR_RETURN(auto digest, HashFile(erofs_file));
  {
    EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(erofs_file, O_RDONLY));
    if (::fsync(fd.get()) != 0) return FailErrno("fsync " + erofs_file);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return FailErrno("stat " + erofs_file);
    meta.size = static_cast<uint64_t>(st.st_size);
    if (::fchmod(fd.get(), 0444) != 0) return FailErrno("chmod " + erofs_file);
  }
  meta.digest = digest;
  meta.blob_path = BlobPath(digest);
  meta.created = NowRfc3339();

  EMBER_ASSIGN_OR_RETURN(auto lock, LockStore());
  Committed result;
  if (PathExists(RefPath(meta.name))) {
    auto old = ReadRef(meta.name);
    if (!replace) {
      return Fail(ErrorCode::kAlreadyExists,
                  "image '" + meta.name + "' already exists" +
                      (old ? " (digest " + old->digest.substr(0, 12) + ")" : "") +
                      "; use --force to replace it or choose another --name");
    }
    if (old) result.replaced_digest = old->digest;
  }
  struct stat st {};
  if (::stat(meta.blob_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == meta.size) {
    result.blob_was_present = true;
  } else {
    EMBER_TRY(RenameDurably(erofs_file, meta.blob_path));
  }
  EMBER_TRY(WriteFileAtomic(RefPath(meta.name), RecordToJson(meta) + "\n", 0644));
  if (result.replaced_digest && *result.replaced_digest != meta.digest) {
    // The old blob stays only if another name uses it. A sandbox that has it mounted keeps
    // working: the mount holds the unlinked file.
    EMBER_ASSIGN_OR_RETURN(auto records, List());
    bool used = std::any_of(records.begin(), records.end(), [&](const ImageRecord& r) {
      return r.digest == *result.replaced_digest;
    });
    if (!used) ::unlink(BlobPath(*result.replaced_digest).c_str());
  }
  result.record = std::move(meta);
  return result;
}

Result<bool> Store::Remove(const std::string& name, const std::string& expected_digest) {
  EMBER_TRY(ValidateImageName(name));
  EMBER_ASSIGN_OR_RETURN(auto lock, LockStore());
  EMBER_ASSIGN_OR_RETURN(auto record, ReadRef(name));
  if (record.digest != expected_digest) {
    return Fail(ErrorCode::kBusy, "image '" + name + "' changed while being removed; try again");
  }
  if (::unlink(RefPath(name).c_str()) != 0) return FailErrno("remove " + RefPath(name));
  EMBER_TRY(SyncDirectory(data_dir_ + "/refs"));
  EMBER_ASSIGN_OR_RETURN(auto records, List());
  bool used = std::any_of(records.begin(), records.end(),
                          [&](const ImageRecord& r) { return r.digest == record.digest; });
  if (used) return false;
  if (::unlink(record.blob_path.c_str()) != 0 && errno != ENOENT) {
    return FailErrno("remove " + record.blob_path);
  }
  return true;
}

}  // namespace ember::image
