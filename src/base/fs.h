// File helpers that name the path in every error. Stored data is only ever written through
// WriteFileAtomic (temp file, fsync, rename, fsync of the directory): a crash leaves the old
// content or the new, never half of either.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember {

Result<std::string> ReadFile(const std::string& path);
// Writes `data` to an existing file (no create, no truncate semantics beyond O_TRUNC): for
// cgroup and /proc control files, where the write itself is the operation.
Status WriteControlFile(const std::string& path, std::string_view data);
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);
// fsync of a directory, so a rename inside it is durable.
Status SyncDirectory(const std::string& dir);
// Renames `from` to `to` and syncs the directory of `to`.
Status RenameDurably(const std::string& from, const std::string& to);

Status MakeDirs(const std::string& path, mode_t mode = 0755);
// rm -rf that never crosses a mount point (it refuses to descend into one), so a bug can never
// delete the contents of a mounted image or of the host.
Status RemoveTree(const std::string& path);
// The same for the entry `name` of an open directory (never following symlinks); `shown` names it
// in errors. Stays on the parent's filesystem.
Status RemoveTreeAt(int parent_fd, const std::string& name, const std::string& shown);
bool PathExists(const std::string& path);
// Names of the entries of a directory, without "." and "..".
Result<std::vector<std::string>> ListDirectory(const std::string& path);
// The same for an open directory (the fd stays the caller's), sorted by name; `shown` names it in
// errors ("opendir SHOWN").
Result<std::vector<std::string>> ListDirectoryAt(int dir_fd, const std::string& shown);

Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);

// An advisory lock (flock) on a file, released when the object dies or the process exits —
// so state guarded by it can never stay locked by a crashed ember.
class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  // Blocks until the lock is acquired. Creates the lock file if needed.
  static Result<FileLock> Acquire(const std::string& path, Mode mode);
  // Fails with kBusy instead of blocking.
  static Result<FileLock> TryAcquire(const std::string& path, Mode mode);

  FileLock() = default;
  bool held() const { return fd_.valid(); }
  void Release() { fd_.reset(); }
  int fd() const { return fd_.get(); }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace ember
