// Who holds which pool slot, across processes, with one file descriptor per pool instead of one
// per slot: an open-file-description lock (F_OFD_SETLK) on byte <n> of <lock_dir>/slots.lock
// claims slot pool-<n>. Like the flock it replaces, such a lock is taken without blocking,
// belongs to the open file description (two Pools in one process compete as two processes
// would) and vanishes when its holder dies, however it dies. One fd per slot capped a daemon
// at a few thousand live sandboxes under RLIMIT_NOFILE; a fork-boot instance now costs the
// daemon one fd (its control socket) for this.
//
// Locks taken through the same open file description never conflict with each other, so the
// leases of one pool are also tracked in memory.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::cgroup {

class SlotLock;

class SlotLocks : public std::enable_shared_from_this<SlotLocks> {
 public:
  static Result<std::shared_ptr<SlotLocks>> Open(const std::string& lock_dir);

  // kBusy when another process, or another lease of this pool, holds slot `n`.
  Result<SlotLock> TryLock(long n);
  const std::string& path() const { return path_; }

 private:
  friend class SlotLock;
  SlotLocks(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  void Unlock(long n);

  UniqueFd fd_;
  std::string path_;
  std::mutex mutex_;
  std::set<long> held_;  // by this open file description
};

// One held slot; move-only, released by its destructor.
class SlotLock {
 public:
  SlotLock() = default;
  SlotLock(SlotLock&& other) noexcept
      : locks_(std::move(other.locks_)), n_(std::exchange(other.n_, -1)) {}
  SlotLock& operator=(SlotLock&& other) noexcept;
  SlotLock(const SlotLock&) = delete;
  SlotLock& operator=(const SlotLock&) = delete;
  ~SlotLock() { Release(); }

  bool held() const { return locks_ != nullptr; }
  void Release();

 private:
  friend class SlotLocks;
  SlotLock(std::shared_ptr<SlotLocks> locks, long n) : locks_(std::move(locks)), n_(n) {}
  std::shared_ptr<SlotLocks> locks_;
  long n_ = -1;
};

}  // namespace ember::cgroup
