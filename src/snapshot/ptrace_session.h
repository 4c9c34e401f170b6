// Holds every thread of a process in a ptrace stop for as long as the object lives: the
// checkpointer's quiescence. PTRACE_SEIZE + PTRACE_INTERRUPT (not PTRACE_ATTACH) so that no
// SIGSTOP is ever queued into the process and the stop leaves no trace once we detach.
//
// Threads may be created while we seize (a running thread calls clone): the task list is re-read
// until a pass finds no thread we do not hold. Once every listed thread is stopped nothing in the
// process runs, so the list is then final.
//
// The destructor detaches from every thread that is still alive, so every error path of the
// checkpointer leaves the process running as it was.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::snapshot {

class PtraceSession {
 public:
  static Result<PtraceSession> Seize(pid_t pid);

  PtraceSession() = default;
  PtraceSession(const PtraceSession&) = delete;
  PtraceSession& operator=(const PtraceSession&) = delete;
  PtraceSession(PtraceSession&& other) noexcept;
  PtraceSession& operator=(PtraceSession&& other) noexcept;
  ~PtraceSession();

  pid_t pid() const { return pid_; }
  // Host tids of the stopped threads, the thread-group leader first.
  const std::vector<pid_t>& tids() const { return tids_; }
  // /proc/PID/mem opened for reading and writing (FOLL_FORCE: PROT_NONE pages are readable too).
  int mem_fd() const { return mem_.get(); }

  // Detaches from every thread. With `leave_stopped`, a SIGSTOP is queued first so the process
  // enters an ordinary group stop the moment it leaves the ptrace stop, without running any of
  // its own code in between.
  Status Detach(bool leave_stopped = false);

 private:
  Status SeizeThread(pid_t tid);

  pid_t pid_ = -1;
  std::vector<pid_t> tids_;
  std::vector<pid_t> gone_;  // exited while being seized; may linger in /proc/PID/task
  UniqueFd mem_;
};

// Waits for `tid` (a seized thread) to enter a ptrace stop and returns the waitpid status.
// Signal-delivery stops on the way are passed through (the thread handles the signal, as it
// would have without us) until the stop is a PTRACE_EVENT_STOP or, when `want_syscall_stop`, a
// syscall stop. Fails if the thread exits.
Result<int> WaitForStop(pid_t tid, bool want_syscall_stop);

}  // namespace ember::snapshot
