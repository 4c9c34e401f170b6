#include "sandbox/cgroup/dynmods.h"

#include <sys/mount.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "base/log.h"

namespace ember::cgroup {

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

Result<bool> EnsureFavorDynmods(const Hierarchy& hierarchy) {
  if (hierarchy.v2_root.empty()) return false;
  std::string options = FavorDynmodsOptions(hierarchy.v2_options);
  if (options.empty()) return true;
  const char* opt_out = std::getenv("EMBER_CGROUP_FAVOR_DYNMODS");
  if (opt_out != nullptr && std::string(opt_out) == "0") return false;
  if (::mount(nullptr, hierarchy.v2_root.c_str(), nullptr, MS_REMOUNT, options.c_str()) != 0) {
    return FailErrno("remount " + hierarchy.v2_root + " with " + options);
  }
  spdlog::info("enabled favordynmods on {}: cgroup moves no longer wait for RCU",
               hierarchy.v2_root);
  return true;
}

}  // namespace ember::cgroup
