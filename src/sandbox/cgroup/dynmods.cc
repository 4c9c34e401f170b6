#include "sandbox/cgroup/dynmods.h"

#include <sys/mount.h>

#include <cstdlib>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"

namespace ember::cgroup {

Result<Cgroup2Mount> FindCgroup2Mount(const std::string& mountinfo_text) {
  std::istringstream lines(mountinfo_text);
  std::string line;
  while (std::getline(lines, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, options;
    tail >> fstype >> source >> options;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, devno, root, mount_point;
    head >> id >> parent >> devno >> root >> mount_point;
    return Cgroup2Mount{mount_point, options};
  }
  return Cgroup2Mount{};
}

std::string FavorDynmodsOptions(const std::string& current_options) {
  std::string out;
  std::istringstream parts(current_options);
  std::string part;
  while (std::getline(parts, part, ',')) {
    if (part == "favordynmods") return "";
    if (part == "rw" || part == "ro" || part.empty()) continue;
    out += part + ",";
  }
  return out + "favordynmods";
}

Result<bool> EnsureFavorDynmods(const std::string& mountinfo) {
  const char* opt_out = std::getenv("EMBER_CGROUP_FAVOR_DYNMODS");
  EMBER_ASSIGN_OR_RETURN(auto text, ReadFile(mountinfo));
  EMBER_ASSIGN_OR_RETURN(auto mount, FindCgroup2Mount(text));
  if (mount.mount_point.empty()) return false;
  std::string options = FavorDynmodsOptions(mount.options);
  if (options.empty()) return true;
  if (opt_out != nullptr && std::string(opt_out) == "0") return false;
  if (::mount(nullptr, mount.mount_point.c_str(), nullptr, MS_REMOUNT, options.c_str()) != 0) {
    return FailErrno("remount " + mount.mount_point + " with " + options);
  }
  spdlog::info("enabled favordynmods on {}: cgroup moves no longer wait for RCU",
               mount.mount_point);
  return true;
}

}  // namespace ember::cgroup
