#include "sandbox/cgroup/slot_locks.h"

#include <fcntl.h>

#include <utility>

#include "base/fs.h"

namespace ember::cgroup {
namespace {

int LockByte(int fd, long n, short type) {
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = n;
  lock.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &lock);
}

}  // namespace

Result<std::shared_ptr<SlotLocks>> SlotLocks::Open(const std::string& lock_dir) {
  std::string path = lock_dir + "/slots.lock";
  EMBER_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  return std::shared_ptr<SlotLocks>(new SlotLocks(std::move(fd), std::move(path)));
}

Result<SlotLock> SlotLocks::TryLock(long n) {
  std::lock_guard guard(mutex_);
  if (held_.count(n) != 0 || LockByte(fd_.get(), n, F_WRLCK) != 0) {
    if (held_.count(n) != 0 || errno == EAGAIN || errno == EACCES) {
      return Fail(ErrorCode::kBusy, "slot " + std::to_string(n) + " of " + path_ + " is held");
    }
    return FailErrno("lock slot " + std::to_string(n) + " of " + path_);
  }
  held_.insert(n);
  return SlotLock(shared_from_this(), n);
}

void SlotLocks::Unlock(long n) {
  std::lock_guard guard(mutex_);
  (void)LockByte(fd_.get(), n, F_UNLCK);
  held_.erase(n);
}

SlotLock& SlotLock::operator=(SlotLock&& other) noexcept {
  if (this != &other) {
    Release();
    locks_ = std::move(other.locks_);
    n_ = std::exchange(other.n_, -1);
  }
  return *this;
}

void SlotLock::Release() {
  if (locks_ == nullptr) return;
  locks_->Unlock(n_);
  locks_.reset();
  n_ = -1;
}

}  // namespace ember::cgroup
