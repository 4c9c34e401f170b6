// Which cgroup hierarchy ember uses on this host, read from /proc/self/mountinfo.
//
// Hosts come in three layouts: pure v1 (one `cgroup` mount per controller or group of
// co-mounted controllers), pure v2 (one `cgroup2` mount, usually /sys/fs/cgroup) and hybrid (v1
// mounts plus a cgroup2 mount, typically /sys/fs/cgroup/unified, that holds only the
// controllers no v1 hierarchy claimed). A controller can be active in one version only, so the
// question is where memory, cpu and pids live: ember uses v1 when all three are v1 controllers
// (the hybrid case included), v2 when all three are in the cgroup2 root's cgroup.controllers,
// and refuses a split or a missing controller with an error that names it.
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::cgroup {

enum class Version { kV1 = 1, kV2 = 2 };

// The controllers ember limits a sandbox with.
enum class Controller { kMemory, kCpu, kPids };
inline constexpr std::array<Controller, 3> kControllers = {Controller::kMemory, Controller::kCpu,
                                                           Controller::kPids};
std::string_view ControllerName(Controller controller);

struct Hierarchy {
  std::string layout;              // "v1" | "v2" | "hybrid": what is mounted, not what ember uses
  Version version = Version::kV1;  // what ember uses
  // Every v1 controller found, by name, with its mount point. Co-mounted controllers (e.g.
  // "cpu,cpuacct") share one mount point.
  std::map<std::string, std::string> v1_mounts;
  std::string v2_root;     // the cgroup2 mount point, "" when there is none
  std::string v2_options;  // its superblock options, e.g. "rw,nsdelegate" (kept on a remount)
  std::vector<std::string> v2_controllers;  // the v2 root's cgroup.controllers

  // The hierarchy root a controller lives under, for the version ember uses.
  std::string RootFor(Controller controller) const;
  // The distinct roots ember makes slot directories under, memory's first. One on v2; up to
  // three on v1 (fewer when controllers are co-mounted).
  std::vector<std::string> Roots() const;
};

// One line of mountinfo that describes a cgroup mount.
struct CgroupMount {
  Version version;
  std::string mount_point;               // octal escapes (\040) decoded
  std::string root;                      // the mounted subtree of the hierarchy, usually "/"
  std::vector<std::string> controllers;  // v1: from the super options; v2: empty (see files)
  std::string super_options;             // e.g. "rw,nsdelegate" (needed to remount cgroup2)
};

// Pure parser: the cgroup and cgroup2 mounts in a mountinfo text, in order.
std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo);

// Reads `mountinfo`, then the cgroup2 root's cgroup.controllers (at the mount point the text
// names, so a test can point a fake mountinfo at a fixture tree).
Result<Hierarchy> DetectHierarchy(const std::string& mountinfo = "/proc/self/mountinfo");

// The decision on parsed input, without touching the host: `v2_controllers` is the content of
// the cgroup2 root's cgroup.controllers ("" if there is no cgroup2 mount).
Result<Hierarchy> DecideHierarchy(const std::vector<CgroupMount>& mounts,
                                  std::string_view v2_controllers);

}  // namespace ember::cgroup
