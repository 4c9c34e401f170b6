// Checkpoint: the full state of a running process, captured from the host while the process is
// held still, as a ProcessState for the image writer. Trusted host code only: ptrace (seize +
// interrupt every thread), /proc, and read-only syscalls injected into a stopped thread for the
// state nothing else reveals (see syscall_injector.h). The process never runs code of ours.
//
// What ember cannot restore is refused before anything is captured, with an error that names
// the object: a pending signal, a socket other than the control channel, an eventfd/epoll/
// io_uring/..., a pipe other than the log pipes on fds 1 and 2, shared anonymous memory, a file
// deleted or replaced since it was opened. docs/snapshot.md has the list and the reasons.
//
// The process is left running exactly as before (an interrupted syscall restarts by itself),
// on success and on every error, unless `leave_stopped` asks for it to stay stopped.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/error.h"
#include "snapshot/process_state.h"

namespace ember::snapshot {

struct CheckpointOptions {
  // The fd number of the agent's control socket in the process (-1: none). It is captured as
  // kControlChannel; every other socket is refused.
  int control_fd = -1;
  // The sandbox's root as the host sees it; paths are verified (device and inode) under it and
  // recorded relative to it. "" means /proc/PID/root.
  std::string root;
  // Leave the process in a group stop (SIGSTOP) after detaching, e.g. to be killed once the
  // image is written, instead of letting it run on.
  bool leave_stopped = false;
};

Result<ProcessState> Checkpoint(pid_t pid, const CheckpointOptions& options);

}  // namespace ember::snapshot
