// flock-based locks on files that their last holder may delete (a directory being cleaned up
// removes its own lock files). Locking such a path naively can lock an inode that was unlinked a
// moment ago, while a newcomer locks the new file of the same name: two "exclusive" holders.
// LockPath closes that gap: after flock succeeds it checks that the path still names the locked
// inode, and starts over if not. All fds are O_CLOEXEC.
#pragma once

#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::image {

// `op` is LOCK_SH or LOCK_EX, optionally | LOCK_NB (then a held lock fails with kBusy). Creates
// the file (mode 0600) if needed; its directory must exist.
Result<UniqueFd> LockPath(const std::string& path, int op);

}  // namespace ember::image
