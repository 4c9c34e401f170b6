// The file descriptor table. What ember can reopen at restore is captured (regular files,
// directories and character devices by path, flags and offset; the control channel; the log
// pipes on fds 1 and 2); everything else is refused naming the fd and what it is, e.g.
//   fd 7 is a TCP socket 127.0.0.1:8080 -> 0.0.0.0:0 LISTEN (socket:[12345]); ember cannot
//   checkpoint open network connections
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "snapshot/process_state.h"
#include "snapshot/root_path.h"

namespace ember::snapshot {

// `control_fd` (or -1) the fd number of the
// agent's control socket in the process.
Result<std::vector<FileDescriptor>> CaptureFiles(pid_t pid, const SandboxRoot& root,
                                                 int control_fd);

// What an anon_inode link ("anon_inode:[eventfd]") is, for a refusal: "an eventfd".
std::string DescribeAnonInode(const std::string& link);

}  // namespace ember::snapshot
