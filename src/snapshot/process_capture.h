// Process-wide state that only the task itself can ask the kernel for, read through syscalls
// injected into one of its stopped threads: signal handlers, the current brk, interval timers
// and the values of POSIX timers (whose existence and notification come from /proc/PID/timers).
// Also the process's clocks, which need no injection: the checkpointer's clocks moved by the
// difference between the two time namespaces' offsets.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
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

// A time namespace's offsets (ns, may be negative) from the host's clocks, which the kernel
// does not nest: a namespace's clocks are always the host's plus its own offsets.
struct TimeOffsets {
  int64_t monotonic_ns = 0;
  int64_t boottime_ns = 0;
};

// The text of /proc/PID/timens_offsets ("monotonic <sec> <nsec>" and "boottime <sec> <nsec>"
// lines, the kernel pads with spaces). kCorrupt naming the line when it is not that.
Result<TimeOffsets> ParseTimensOffsets(std::string_view text);

// The offsets of the time namespace the process under `proc_dir` (/proc/PID) runs in: all 0 when
// the kernel has no time namespaces. timens_offsets shows the namespace its children will get,
// which is the process's own unless it unshared CLONE_NEWTIME without entering it: that is
// refused (kUnsupported), its clocks could not be told.
Result<TimeOffsets> ActiveTimeOffsets(const std::string& proc_dir);

// CLOCK_MONOTONIC and CLOCK_BOOTTIME of process `pid` now, as it would read them itself.
Result<CheckpointClocks> CaptureClocks(pid_t pid);

}  // namespace ember::snapshot
