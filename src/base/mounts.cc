#include "base/mounts.h"

#include <sys/mount.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace ember {

std::vector<std::string> MountPointsUnder(const std::string& dir) {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (mount_point == dir || mount_point.rfind(dir + "/", 0) == 0) points.push_back(mount_point);
  }
  return points;
}

void DetachMountsUnder(const std::string& dir) {
  std::vector<std::string> points = MountPointsUnder(dir);
  std::stable_sort(points.begin(), points.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& point : points) ::umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
}

}  // namespace ember
