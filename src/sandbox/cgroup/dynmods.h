// Moving a process between cgroups takes the kernel's global cgroup_threadgroup_rwsem for
// writing. By default its readers (every fork and exit) are per-cpu and cheap, so each writer
// first waits for an RCU grace period: measured here at 4-14 ms per `ember run` on cgroup v1,
// more than the whole rest of a sandbox start. The cgroup2 mount option `favordynmods` flips the
// trade-off host-wide: forks and exits get slightly dearer, moves become ~20 µs. The semaphore is
// global, so enabling it on the cgroup2 mount also speeds up v1 attaches on a hybrid host (v1
// mounts do not accept the option). Set EMBER_CGROUP_FAVOR_DYNMODS=0 to leave the host as it is.
#pragma once

#include <string>

#include "base/error.h"
#include "sandbox/cgroup/hierarchy.h"

namespace ember::cgroup {

// The options to remount with: the current ones (a cgroup2 remount resets flags it is not
// given) plus favordynmods, without "rw". Empty if favordynmods is already on.
std::string FavorDynmodsOptions(const std::string& current_options);

// Remounts the hierarchy's cgroup2 mount with favordynmods unless it is already on, there is no
// cgroup2 mount, or the environment opts out. Returns whether the option is on afterwards.
Result<bool> EnsureFavorDynmods(const Hierarchy& hierarchy);

}  // namespace ember::cgroup
