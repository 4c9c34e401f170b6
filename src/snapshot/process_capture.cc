#include "snapshot/process_capture.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include <cstring>
#include <ctime>
#include <string>

#include "base/fs.h"
#include "snapshot/proc_parsers.h"

namespace ember::snapshot {
namespace {

// struct sigaction as the kernel's rt_sigaction takes it on x86-64 (not glibc's layout).
struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

// Runs a syscall that writes a T to the scratch area (passed in `args`) and reads it back.
template <typename T>
Result<T> CallForStruct(SyscallInjector& injector, long nr, std::array<uint64_t, 6> args,
                        const std::string& what) {
  static_assert(sizeof(T) <= SyscallInjector::kScratchSize);
  EMBER_ASSIGN_OR_RETURN(int64_t rc, injector.Call(nr, args));
  if (rc != 0) return FailErrno("injected " + what, static_cast<int>(-rc));
  EMBER_ASSIGN_OR_RETURN(auto bytes, injector.ReadScratch(sizeof(T)));
  T value;
  std::memcpy(&value, bytes.data(), sizeof(T));
  return value;
}

uint64_t Nanos(const timespec& ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}
uint64_t Nanos(const timeval& tv) {
  return static_cast<uint64_t>(tv.tv_sec) * 1000000000ULL +
         static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
}

}  // namespace

Result<std::array<SignalAction, 64>> CaptureSignalActions(SyscallInjector& injector) {
  std::array<SignalAction, 64> actions{};
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    // rt_sigaction(sig, NULL, scratch, sizeof(sigset_t) as the kernel counts it = 8): the new
    // action is NULL, so nothing changes.
    EMBER_ASSIGN_OR_RETURN(
        auto act, CallForStruct<KernelSigaction>(
                      injector, SYS_rt_sigaction,
                      {static_cast<uint64_t>(sig), 0, injector.scratch(), sizeof(uint64_t)},
                      "rt_sigaction(" + proc::SignalName(sig) + ")"));
    actions[sig - 1] = {act.handler, act.flags, act.restorer, act.mask};
  }
  return actions;
}

Result<uint64_t> CaptureBrk(SyscallInjector& injector) {
  EMBER_ASSIGN_OR_RETURN(int64_t brk, injector.Call(SYS_brk, {0}));
  if (brk <= 0)
    return Fail(ErrorCode::kInternal, "injected brk(0) returned " + std::to_string(brk));
  return static_cast<uint64_t>(brk);
}

Result<std::vector<IntervalTimer>> CaptureIntervalTimers(SyscallInjector& injector) {
  std::vector<IntervalTimer> timers;
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    EMBER_ASSIGN_OR_RETURN(
        auto value, CallForStruct<itimerval>(injector, SYS_getitimer,
                                             {static_cast<uint64_t>(which), injector.scratch()},
                                             "getitimer(" + std::to_string(which) + ")"));
    if (value.it_value.tv_sec == 0 && value.it_value.tv_usec == 0) continue;  // disarmed
    timers.push_back({which, Nanos(value.it_interval), Nanos(value.it_value)});
  }
  return timers;
}

Result<std::vector<PosixTimer>> CapturePosixTimers(pid_t pid, SyscallInjector& injector,
                                                   const std::map<pid_t, pid_t>& ns_tids) {
  std::string path = "/proc/" + std::to_string(pid) + "/timers";
  EMBER_ASSIGN_OR_RETURN(auto text, ReadFile(path));
  EMBER_ASSIGN_OR_RETURN(auto listed, proc::ParseTimers(text));
  std::vector<PosixTimer> timers;
  for (const proc::TimerInfo& info : listed) {
    EMBER_ASSIGN_OR_RETURN(
        auto value, CallForStruct<itimerspec>(injector, SYS_timer_gettime,
                                              {static_cast<uint64_t>(info.id), injector.scratch()},
                                              "timer_gettime(" + std::to_string(info.id) + ")"));
    PosixTimer timer;
    timer.id = info.id;
    timer.clock_id = info.clock_id;
    timer.signal = info.signal;
    timer.notify = info.notify;
    timer.sigev_value = info.sigev_value;
    timer.interval_ns = Nanos(value.it_interval);
    timer.value_ns = Nanos(value.it_value);
    if (info.notify & SIGEV_THREAD_ID) {
      // /proc shows the thread in the pid namespace of the /proc we read: the host's.
      auto it = ns_tids.find(info.notify_pid);
      if (it == ns_tids.end()) {
        return Fail(ErrorCode::kUnsupported,
                    "POSIX timer " + std::to_string(info.id) + " notifies thread " +
                        std::to_string(info.notify_pid) + ", which is not a thread of the process");
      }
      timer.notify_tid = it->second;
    }
    timers.push_back(timer);
  }
  return timers;
}

}  // namespace ember::snapshot
