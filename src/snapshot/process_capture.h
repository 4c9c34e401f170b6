// Process-wide state that only the task itself can ask the kernel for, read through syscalls
// injected into one of its stopped threads: signal handlers, the current brk, interval timers
// and the values of POSIX timers (whose existence and notification come from /proc/PID/timers).
#pragma once

#include <sys/types.h>

#include <array>
#include <map>
#include <vector>

#include "base/error.h"
#include "snapshot/process_state.h"
#include "snapshot/syscall_injector.h"

namespace ember::snapshot {

// rt_sigaction(sig, NULL, &old) for signals 1..64 (SIGKILL and SIGSTOP stay SIG_DFL).
Result<std::array<SignalAction, 64>> CaptureSignalActions(SyscallInjector& injector);

// brk(0): the current program break (/proc/PID/stat only has where it started).
Result<uint64_t> CaptureBrk(SyscallInjector& injector);

// getitimer for ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF; only armed timers are returned.
Result<std::vector<IntervalTimer>> CaptureIntervalTimers(SyscallInjector& injector);

// /proc/PID/timers plus timer_gettime for each. `ns_tids` maps host tids to the process's own
// (a SIGEV_THREAD_ID timer names its thread).
Result<std::vector<PosixTimer>> CapturePosixTimers(pid_t pid, SyscallInjector& injector,
                                                   const std::map<pid_t, pid_t>& ns_tids);

}  // namespace ember::snapshot
