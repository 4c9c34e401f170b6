#include "engine/function_store.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "engine/bundle_tree.h"
#include "engine/manifest_rules.h"
#include "image/unpack.h"

namespace ember::engine {
namespace {

using nlohmann::json;

// Sandboxes run as unprivileged host ids and bind-mount the code from its host path, so every
// directory on the way must be searchable by others (not listable).
constexpr mode_t kPathDirMode = 0711;

bool IsVersion(std::string_view s) {
  return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string VersionOf(const std::string& manifest_json, const std::string& tree_digest) {
  std::string material = manifest_json + '\0' + tree_digest;
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(material.data(), material.size()));
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < 8; ++i) {
    hex.push_back(kHex[canonical.digest[i] >> 4]);
    hex.push_back(kHex[canonical.digest[i] & 0xf]);
  }
  return hex;
}

struct Current {
  std::string version;
  std::string deployed;
};

Result<Current> ReadCurrent(const std::string& fn_dir, std::string_view name) {
  auto text = ReadFile(fn_dir + "/current");
  if (!text) {
    if (text.error().sys_errno() == ENOENT) {
      return Fail(ErrorCode::kNotFound, "function '" + std::string(name) + "' is not deployed");
    }
    return Fail(std::move(text).error());
  }
  auto doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("version") ||
      !doc["version"].is_string() || !IsVersion(doc["version"].get<std::string>()) ||
      !doc.contains("deployed") || !doc["deployed"].is_string()) {
    return Fail(ErrorCode::kCorrupt, fn_dir + "/current is damaged");
  }
  return Current{doc["version"].get<std::string>(), doc["deployed"].get<std::string>()};
}

}  // namespace

StagedFunction& StagedFunction::operator=(StagedFunction&& other) noexcept {
  if (this != &other) {
    Discard();
    dir_ = std::exchange(other.dir_, "");
    manifest_ = std::move(other.manifest_);
    version_ = std::move(other.version_);
    files_ = other.files_;
    bytes_ = other.bytes_;
  }
  return *this;
}

void StagedFunction::Discard() {
  if (dir_.empty()) return;
  if (auto removed = RemoveTree(dir_); !removed) {
    spdlog::warn("remove staged function: {}", removed.error().ToString());
  }
  dir_.clear();
}

Result<FunctionStore> FunctionStore::Open(const std::string& data_dir) {
  EMBER_TRY(MakeDirs(data_dir, 0755));
  char resolved[PATH_MAX];
  if (::realpath(data_dir.c_str(), resolved) == nullptr) return FailErrno("realpath " + data_dir);
  FunctionStore store(std::string(resolved) + "/functions");
  auto usable = [&]() -> Status {
    // The data dir may have been created 0700 (by the image store); sandboxes must be able to
    // pass through it to bind-mount their code. Search permission only: it stays unlistable.
    struct stat st {};
    if (::stat(resolved, &st) != 0) return FailErrno(std::string("stat ") + resolved);
    if ((st.st_mode & S_IXOTH) == 0 && ::chmod(resolved, (st.st_mode & 07777) | S_IXOTH) != 0) {
      return FailErrno(std::string("chmod o+x ") + resolved);
    }
    EMBER_TRY(MakeDirs(store.root_, kPathDirMode));
    if (::chmod(store.root_.c_str(), kPathDirMode) != 0) return FailErrno("chmod " + store.root_);
    return store.CollectGarbage();
  }();
  if (!usable) {
    return Fail(
        std::move(usable).error().Context("function store in " + data_dir + " is not usable"));
  }
  return store;
}

Status FunctionStore::CollectGarbage() const {
  for (const char* leftover : {"/.staging", "/.trash"}) {
    if (!PathExists(root_ + leftover)) continue;
    spdlog::info("removing {}{} (deploys or removals a crash interrupted)", root_, leftover);
    EMBER_TRY(RemoveTree(root_ + leftover));
  }
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(root_));
  for (const auto& name : names) {
    if (!rules::IsFunctionName(name)) continue;
    std::string fn_dir = root_ + "/" + name;
    if (!PathExists(fn_dir + "/current")) {
      // A first deploy that crashed before `current` was written: it was never deployed (and a
      // crash during this removal leaves it in the same state).
      spdlog::info("removing {}: it was never committed", fn_dir);
      EMBER_TRY(RemoveTree(fn_dir));
      continue;
    }
    EMBER_ASSIGN_OR_RETURN(auto entries, ListDirectory(fn_dir));
    for (const auto& entry : entries) {
      if (entry.find(".tmp.") != std::string::npos) ::unlink((fn_dir + "/" + entry).c_str());
    }
  }
  return Ok();
}

Status FunctionStore::MoveToTrashAndRemove(const std::string& path) const {
  std::string trash = root_ + "/.trash";
  EMBER_TRY(MakeDirs(trash, 0700));
  std::string doomed = trash + "/" + RandomHex();
  EMBER_TRY(RenameDurably(path, doomed));
  // From here on the entry is gone from every reader's view; a failed delete is only disk space,
  // collected by the next Open.
  if (auto removed = RemoveTree(doomed); !removed) {
    spdlog::warn("remove {}: {}", doomed, removed.error().ToString());
  }
  return Ok();
}

Result<StagedFunction> FunctionStore::NewStaging() const {
  std::string staging = root_ + "/.staging";
  EMBER_TRY(MakeDirs(staging, kPathDirMode));
  StagedFunction staged;
  std::string dir = staging + "/" + RandomHex();
  if (::mkdir(dir.c_str(), kPathDirMode) != 0) return FailErrno("mkdir " + dir);
  // mkdir's mode is masked by the umask; the sandbox must be able to traverse it.
  if (::chmod(dir.c_str(), kPathDirMode) != 0) return FailErrno("chmod " + dir);
  staged.dir_ = dir;
  return staged;
}

Result<StagedFunction> FunctionStore::Stage(std::string_view bundle_tar) const {
  EMBER_ASSIGN_OR_RETURN(auto staged, NewStaging());
  if (bundle_tar.size() > kMaxBundleTarBytes) {
    return Fail(ErrorCode::kResourceExhausted,
                "the bundle tar is " + std::to_string(bundle_tar.size()) +
                    " bytes, more than the limit of " + std::to_string(kMaxBundleTarBytes));
  }
  std::string tar = staged.dir_ + "/bundle.tar";
  {
    EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(tar, O_WRONLY | O_CREAT | O_EXCL, 0600));
    std::string_view left = bundle_tar;
    while (!left.empty()) {
      ssize_t n = ::write(fd.get(), left.data(), left.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return FailErrno("write " + tar);
      left.remove_prefix(static_cast<size_t>(n));
    }
  }
  EMBER_ASSIGN_OR_RETURN(staged, StageFromTar(tar, std::move(staged)));
  ::unlink(tar.c_str());
  return staged;
}

Result<StagedFunction> FunctionStore::StageFile(const std::string& tar_path) const {
  EMBER_ASSIGN_OR_RETURN(auto staged, NewStaging());
  return StageFromTar(tar_path, std::move(staged));
}

Result<StagedFunction> FunctionStore::StageFromTar(const std::string& tar_path,
                                                   StagedFunction staged) const {
  EMBER_TRY(ScanBundleTar(tar_path));
  std::string code = staged.dir_ + "/code";
  if (::mkdir(code.c_str(), 0755) != 0) return FailErrno("mkdir " + code);
  auto unpacked = image::UnpackLayers({tar_path}, /*layered=*/false, code);
  if (!unpacked) {
    // The staging path means nothing to the client that sent the bundle.
    Error error = std::move(unpacked).error();
    std::string message = error.message();
    if (message.starts_with(tar_path + ": ")) message.erase(0, tar_path.size() + 2);
    return Fail(
        Error(error.code() == ErrorCode::kInternal ? ErrorCode::kInvalidArgument : error.code(),
              "unpack the bundle: " + message, error.sys_errno()));
  }
  EMBER_ASSIGN_OR_RETURN(auto tree, NormalizeBundleTree(code));
  EMBER_ASSIGN_OR_RETURN(staged.manifest_, LoadBundleManifest(code, "the bundle"));
  std::string manifest_json = ManifestToJson(staged.manifest_);
  staged.version_ = VersionOf(manifest_json, tree.digest);
  staged.files_ = tree.entries;
  staged.bytes_ = tree.bytes;
  EMBER_TRY(WriteFileAtomic(staged.dir_ + "/manifest.json", manifest_json));
  return staged;
}

Result<StoredFunction> FunctionStore::Commit(StagedFunction&& staged_arg) {
  StagedFunction staged = std::move(staged_arg);  // discarded on every path but success
  if (!staged.valid()) {
    return Fail(ErrorCode::kInvalidArgument, "commit: the staged function was already used");
  }
  const std::string& name = staged.manifest_.name;
  std::string fn_dir = root_ + "/" + name;
  std::string version_dir = fn_dir + "/" + staged.version_;
  bool new_function = !PathExists(fn_dir);
  EMBER_TRY(MakeDirs(fn_dir, kPathDirMode));
  if (new_function) {
    if (::chmod(fn_dir.c_str(), kPathDirMode) != 0) return FailErrno("chmod " + fn_dir);
    EMBER_TRY(SyncDirectory(root_));
  }
  if (PathExists(version_dir)) {
    staged.Discard();  // the same code and manifest are stored already
  } else {
    // The code must be on disk before the rename can make it reachable.
    EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(staged.dir_, O_RDONLY | O_DIRECTORY));
    if (::syncfs(fd.get()) != 0) return FailErrno("syncfs " + staged.dir_);
    EMBER_TRY(RenameDurably(staged.dir_, version_dir));
    staged.dir_.clear();
  }
  std::string deployed = NowRfc3339();
  json current = {{"version", staged.version_}, {"deployed", deployed}};
  EMBER_TRY_CTX(WriteFileAtomic(fn_dir + "/current", current.dump() + "\n"),
                "commit function " + name);
  return StoredFunction{std::move(staged.manifest_), staged.version_, version_dir + "/code",
                        deployed};
}

Result<StoredFunction> FunctionStore::GetVersion(std::string_view name,
                                                 std::string_view version) const {
  EMBER_TRY(rules::CheckFunctionName(name));
  if (!IsVersion(version)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid version '" + std::string(version) +
                                                 "': a version is 16 lower-case hex digits");
  }
  std::string version_dir = root_ + "/" + std::string(name) + "/" + std::string(version);
  auto text = ReadFile(version_dir + "/manifest.json");
  if (!text) {
    if (text.error().sys_errno() == ENOENT) {
      return Fail(ErrorCode::kNotFound,
                  "function '" + std::string(name) + "' has no version " + std::string(version));
    }
    return Fail(std::move(text).error());
  }
  auto manifest = ManifestFromJson(*text);
  if (!manifest) return Fail(std::move(manifest).error().Context(version_dir + "/manifest.json"));
  if (manifest->name != name) {
    return Fail(ErrorCode::kCorrupt,
                version_dir + "/manifest.json names function '" + manifest->name + "'");
  }
  if (!PathExists(version_dir + "/code")) {
    return Fail(ErrorCode::kCorrupt, version_dir + "/code is missing");
  }
  return StoredFunction{std::move(*manifest), std::string(version), version_dir + "/code", ""};
}

Result<StoredFunction> FunctionStore::Get(std::string_view name) const {
  EMBER_TRY(rules::CheckFunctionName(name));
  EMBER_ASSIGN_OR_RETURN(auto current, ReadCurrent(root_ + "/" + std::string(name), name));
  auto function = GetVersion(name, current.version);
  if (!function && function.error().code() == ErrorCode::kNotFound) {
    return Fail(ErrorCode::kCorrupt, "function '" + std::string(name) + "': its current version " +
                                         current.version + " is missing");
  }
  if (function) function->deployed = current.deployed;
  return function;
}

Result<std::vector<StoredFunction>> FunctionStore::List() const {
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(root_));
  std::sort(names.begin(), names.end());
  std::vector<StoredFunction> functions;
  for (const auto& name : names) {
    if (!rules::IsFunctionName(name)) continue;
    auto function = Get(name);
    if (function) {
      functions.push_back(std::move(*function));
    } else if (function.error().code() != ErrorCode::kNotFound) {
      spdlog::warn("function store: skipping {}: {}", name, function.error().ToString());
    }
  }
  return functions;
}

Result<std::vector<std::string>> FunctionStore::Versions(std::string_view name) const {
  EMBER_TRY(rules::CheckFunctionName(name));
  std::string fn_dir = root_ + "/" + std::string(name);
  if (!PathExists(fn_dir)) {
    return Fail(ErrorCode::kNotFound, "function '" + std::string(name) + "' is not deployed");
  }
  EMBER_ASSIGN_OR_RETURN(auto entries, ListDirectory(fn_dir));
  std::vector<std::string> versions;
  for (auto& entry : entries) {
    if (IsVersion(entry)) versions.push_back(std::move(entry));
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

Status FunctionStore::Remove(std::string_view name) {
  EMBER_TRY(rules::CheckFunctionName(name));
  std::string fn_dir = root_ + "/" + std::string(name);
  if (!PathExists(fn_dir)) {
    return Fail(ErrorCode::kNotFound, "function '" + std::string(name) + "' is not deployed");
  }
  return MoveToTrashAndRemove(fn_dir);
}

Status FunctionStore::RemoveVersionsExcept(std::string_view name,
                                           const std::set<std::string>& keep) {
  EMBER_ASSIGN_OR_RETURN(auto versions, Versions(name));
  std::string fn_dir = root_ + "/" + std::string(name);
  EMBER_ASSIGN_OR_RETURN(auto current, ReadCurrent(fn_dir, name));
  for (const auto& version : versions) {
    if (version == current.version || keep.count(version) != 0) continue;
    EMBER_TRY_CTX(MoveToTrashAndRemove(fn_dir + "/" + version),
                  "remove version " + version + " of function " + std::string(name));
  }
  return Ok();
}

}  // namespace ember::engine
