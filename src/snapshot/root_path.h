// Paths the checkpointer records are paths inside the sandbox's root. /proc shows a path (maps,
// fd links, cwd, exe) as the kernel's d_path of the object from the READER's root: for a process
// that pivot_root'ed in another mount namespace that is its path inside the sandbox; for a
// process chroot'ed below our root it is the host path (the sandbox root's path + the path
// inside). Neither is trusted: the path is looked up under the sandbox's root as the host sees
// it (by default /proc/PID/root) and must lead to the very file the process holds (same device
// and inode), or the object is refused by name.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"

namespace ember::snapshot {

struct SandboxRoot {
  std::string host_path;  // where the host opens the root: "/proc/PID/root" or a directory
  std::string as_shown;   // the root itself as /proc shows it ("/" unless chroot'ed below ours)
};

// `option` is CheckpointOptions::root ("" = /proc/PID/root).
Result<SandboxRoot> SandboxRootOf(pid_t pid, const std::string& option);

struct RootedFile {
  std::string path;             // inside the root
  uint64_t dev = 0, inode = 0;  // stat of the path under the root
};

// `shown` is the path as /proc printed it; `held` the stat of the object the process holds
// (through /proc/PID/fd/N, the maps line, /proc/PID/cwd). `what` names the object in errors
// ("fd 5", "area 7f00-7f10").
Result<RootedFile> ResolveInRoot(const SandboxRoot& root, const std::string& shown,
                                 const struct stat& held, const std::string& what);

}  // namespace ember::snapshot
