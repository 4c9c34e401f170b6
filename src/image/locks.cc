#include "image/locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
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

void DetachMountsUnder(const std::string& dir) {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (mount_point == dir || mount_point.rfind(dir + "/", 0) == 0) points.push_back(mount_point);
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& point : points) ::umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
}

}  // namespace ember::image
