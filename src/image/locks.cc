#include "image/locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <vector>

namespace ember::image {

Result<UniqueFd> LockPath(const std::string& path, int op) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return FailErrno("open lock " + path);
    while (::flock(fd.get(), op) != 0) {
      if (errno == EWOULDBLOCK && (op & LOCK_NB)) {
        return Fail(ErrorCode::kBusy, path + " is locked by another process");
      }
      if (errno != EINTR) return FailErrno("flock " + path);
    }
    struct stat held {
    }, named{};
    if (::fstat(fd.get(), &held) != 0) return FailErrno("stat lock " + path);
    if (::stat(path.c_str(), &named) == 0 && named.st_ino == held.st_ino &&
        named.st_dev == held.st_dev) {
      return fd;
    }
    // The previous holder removed the file while we waited: lock the new one instead.
  }
  return Fail(ErrorCode::kBusy, "lock " + path + ": the file keeps being replaced");
}

}  // namespace ember::image
