// Paths the checkpointer records are paths inside the sandbox's root. /proc shows a path (maps,
// fd links, cwd, exe) as the kernel's d_path of the object, which for a process in another mount
// namespace after pivot_root is relative to the sandbox's root, and for a process sharing our
// root the host path. Neither is trusted: the path is looked up under the sandbox's root as the
// host sees it (by default /proc/PID/root) and must lead to the very file the process holds
// (same device and inode), or the object is refused by name.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "base/error.h"

namespace ember::snapshot {

struct RootedFile {
  std::string path;             // inside the root
  uint64_t dev = 0, inode = 0;  // stat of root + path
};

// `shown` is the path as /proc printed it; `held` the stat of the object the process holds
// (through /proc/PID/fd/N, /proc/PID/map_files/..., /proc/PID/cwd). `what` names the object in
// errors ("fd 5", "area 7f00-7f10"). When `root` is a host directory and `shown` starts with it,
// the path with that prefix removed is tried as well.
Result<RootedFile> ResolveInRoot(const std::string& root, const std::string& shown,
                                 const struct stat& held, const std::string& what);

}  // namespace ember::snapshot
