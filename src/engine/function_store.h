// Deployed functions, persisted under <data_dir>/functions/:
//
//   functions/<name>/current              {"version": "...", "deployed": "RFC 3339"}, written
//                                         atomically (temp, fsync, rename, fsync of the dir)
//   functions/<name>/<version>/code/      the unpacked bundle (files 0644/0755, dirs 0755, owned by
//                                         the daemon, no xattrs), mounted read-only at /function
//   functions/<name>/<version>/manifest.json   ManifestToJson of the bundle's ember.toml
//   functions/.staging/<random>/          deploys in progress (garbage after a crash)
//   functions/.trash/<random>/            removals in progress (garbage after a crash)
//
// A version is the first 16 hex digits of an XXH3-128 over the manifest JSON and a digest of the
// code tree (paths, types, modes, symlink targets and file contents, in sorted order): the same
// bundle deployed twice is the same version, whatever the tar's order or mtimes.
//
// Deploying is two steps so the daemon can boot a test instance from the staged code before
// anything changes: Stage() unpacks and checks, Commit() renames the staged version into place and
// then switches `current`. A crash at any moment leaves the old function or the new one, never a
// half one: before the `current` write the old version is still current (a new function without
// `current` is removed by the next Open); after it the new version is complete on disk (synced
// before the rename). Removal renames the function's directory into .trash first.
//
// Old versions are not removed by Commit: instances may still run from them. The engine calls
// RemoveVersionsExcept once no instance uses them (and at startup, with only the current version).
//
// Threads: Stage() touches only its own staging directory and may run on any thread, concurrently
// with everything else. Commit, Remove and RemoveVersionsExcept must be called by one owner at a
// time (the engine's state owner); Get and List may run concurrently with Stage. One process owns a
// data dir's store (the daemon holds the data dir's lock).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "engine/bundle.h"
#include "engine/manifest.h"

namespace ember::engine {

struct StoredFunction {
  Manifest manifest;
  std::string version;   // 16 lower-case hex digits
  std::string code_dir;  // absolute host path of the code (functions/<name>/<version>/code)
  std::string deployed;  // RFC 3339, UTC, when this version became current
};

class FunctionStore;

// A bundle unpacked and checked, not yet deployed. Destroying it uncommitted removes its files.
class StagedFunction {
 public:
  StagedFunction() = default;
  StagedFunction(StagedFunction&& other) noexcept { *this = std::move(other); }
  StagedFunction& operator=(StagedFunction&& other) noexcept;
  StagedFunction(const StagedFunction&) = delete;
  StagedFunction& operator=(const StagedFunction&) = delete;
  ~StagedFunction() { Discard(); }

  const Manifest& manifest() const { return manifest_; }
  const std::string& version() const { return version_; }
  // Absolute path of the staged code: usable to boot a test instance until Commit or destruction.
  std::string code_dir() const { return dir_.empty() ? "" : dir_ + "/code"; }
  uint64_t files() const { return files_; }  // entries (files, dirs, symlinks) in the bundle
  uint64_t bytes() const { return bytes_; }  // bytes of file data
  bool valid() const { return !dir_.empty(); }

  // Removes the staged files now.
  void Discard();

 private:
  friend class FunctionStore;
  std::string dir_;  // functions/.staging/<random>
  Manifest manifest_;
  std::string version_;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
};

class FunctionStore {
 public:
  // Creates <data_dir>/functions if needed (every directory on the way to the code searchable by
  // others, 0711, including <data_dir> itself: sandboxes run as unprivileged host ids and
  // bind-mount the code from its host path) and collects what a crash left: .staging, .trash, and
  // function directories without a `current` (a first deploy that never committed). Versions that
  // are not current are kept (see RemoveVersionsExcept).
  static Result<FunctionStore> Open(const std::string& data_dir);

  // Unpacks a bundle tar (what PackBundle makes; any tar, plain or compressed, is read) and checks
  // it: safe paths (no traversal, absolute paths, writing through symlinks, devices), only files,
  // directories, symlinks and hardlinks, at most kMaxBundleEntries entries and kMaxBundleBytes of
  // data, a valid ember.toml whose handler exists. Errors are kInvalidArgument (bad bundle) or
  // kResourceExhausted (a limit, named in the message).
  Result<StagedFunction> Stage(std::string_view bundle_tar) const;
  // The same from a tar file (the daemon may spool a large upload to disk instead of memory).
  Result<StagedFunction> StageFile(const std::string& tar_path) const;

  // Makes the staged version the function's current one (creating the function if new). Deploying
  // the version that is already current only refreshes `deployed`.
  Result<StoredFunction> Commit(StagedFunction&& staged);

  // The current version of a function; kNotFound if there is none, kInvalidArgument for a name
  // that is not a function name, kCorrupt if its stored files are damaged.
  Result<StoredFunction> Get(std::string_view name) const;
  // Every function, by name. A damaged one is logged and left out, so one bad entry never hides
  // the others.
  Result<std::vector<StoredFunction>> List() const;
  // The versions of a function present on disk (including the current one), sorted.
  Result<std::vector<std::string>> Versions(std::string_view name) const;
  // A specific version's manifest and code (for instances still running an old version).
  Result<StoredFunction> GetVersion(std::string_view name, std::string_view version) const;

  // Removes the function and all its versions (kNotFound if absent). The caller stops its
  // instances first.
  Status Remove(std::string_view name);
  // Removes the versions of `name` not in `keep`. The current version is always kept.
  Status RemoveVersionsExcept(std::string_view name, const std::set<std::string>& keep);

  const std::string& root() const { return root_; }  // <data_dir>/functions, absolute

 private:
  explicit FunctionStore(std::string root) : root_(std::move(root)) {}
  Result<StagedFunction> StageFromTar(const std::string& tar_path, StagedFunction staged) const;
  Result<StagedFunction> NewStaging() const;
  Status CollectGarbage() const;
  Status MoveToTrashAndRemove(const std::string& path) const;

  std::string root_;
};

}  // namespace ember::engine
