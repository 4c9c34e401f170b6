#include "snapshot/process_capture.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include <cstring>
#include <ctime>
#include <sstream>
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

constexpr int64_t kNanosPerSecond = 1000000000;

// The namespace file's identity; ENOENT (no time namespaces in this kernel) is returned as is.
Result<struct stat> StatNamespace(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FailErrno("stat " + path);
  return st;
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<uint64_t> ReadClock(clockid_t clock, const char* name) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return FailErrno(std::string("clock_gettime ") + name);
  return Nanos(ts);
}

// `clock` (ours) moved from the namespace with offset `from` to the one with offset `to`.
uint64_t Shift(uint64_t clock, int64_t from, int64_t to) {
  int64_t shifted = static_cast<int64_t>(clock) - from + to;
  return shifted < 0 ? 0 : static_cast<uint64_t>(shifted);  // the kernel keeps clocks >= 0
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

Result<TimeOffsets> ParseTimensOffsets(std::string_view text) {
  TimeOffsets offsets;
  int line_number = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string line(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    std::istringstream words(line);
    std::string clock;
    int64_t sec = 0, nsec = 0;
    if (!(words >> clock)) continue;  // an empty line
    const bool parsed = static_cast<bool>(words >> sec >> nsec) && (words >> std::ws).eof();
    // |sec| bounded so that sec * 1e9 + nsec cannot overflow (the kernel's bound is lower).
    if (!parsed || nsec < 0 || nsec >= kNanosPerSecond || sec > INT64_MAX / kNanosPerSecond - 1 ||
        sec < -(INT64_MAX / kNanosPerSecond - 1)) {
      return Fail(ErrorCode::kCorrupt, "timens_offsets line " + std::to_string(line_number) +
                                           " is not '<clock> <sec> <nsec>': '" + line + "'");
    }
    const int64_t value = sec * kNanosPerSecond + nsec;
    if (clock == "monotonic") {
      offsets.monotonic_ns = value;
    } else if (clock == "boottime") {
      offsets.boottime_ns = value;
    } else {
      return Fail(ErrorCode::kCorrupt, "timens_offsets line " + std::to_string(line_number) +
                                           " names clock '" + clock +
                                           "' (monotonic or boottime expected)");
    }
  }
  return offsets;
}

Result<TimeOffsets> ActiveTimeOffsets(const std::string& proc_dir) {
  auto active = StatNamespace(proc_dir + "/ns/time");
  if (!active && active.error().sys_errno() == ENOENT) return TimeOffsets{};
  if (!active) return Fail(std::move(active).error());
  EMBER_ASSIGN_OR_RETURN(struct stat children, StatNamespace(proc_dir + "/ns/time_for_children"));
  if (!SameFile(*active, children)) {
    return Fail(ErrorCode::kUnsupported,
                proc_dir +
                    " has unshared a time namespace it has not entered: timens_offsets shows "
                    "that one, so its own clocks cannot be told");
  }
  const std::string path = proc_dir + "/timens_offsets";
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto offsets = ParseTimensOffsets(text);
  if (!offsets) return Fail(std::move(offsets).error().Context(path));
  return offsets;
}

Result<CheckpointClocks> CaptureClocks(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string what = "read the clocks of process " + std::to_string(pid);
  CheckpointClocks clocks;
  EMBER_ASSIGN_OR_RETURN(clocks.monotonic_ns, ReadClock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC"));
  EMBER_ASSIGN_OR_RETURN(clocks.boottime_ns, ReadClock(CLOCK_BOOTTIME, "CLOCK_BOOTTIME"));
  // In our time namespace (a plainly started process, or a kernel without time namespaces) its
  // clocks are ours. Otherwise (a restored instance, ember-restore gave it offsets) both
  // namespaces' offsets are from the host's clocks: ours are taken off, its own added.
  auto mine = StatNamespace("/proc/self/ns/time");
  if (!mine && mine.error().sys_errno() == ENOENT) return clocks;
  if (!mine) return Fail(std::move(mine).error().Context(what));
  auto theirs = StatNamespace(proc + "/ns/time");
  if (!theirs) return Fail(std::move(theirs).error().Context(what));
  if (SameFile(*mine, *theirs)) return clocks;
  auto from = ActiveTimeOffsets("/proc/self");
  if (!from) return Fail(std::move(from).error().Context(what));
  auto to = ActiveTimeOffsets(proc);
  if (!to) return Fail(std::move(to).error().Context(what));
  clocks.monotonic_ns = Shift(clocks.monotonic_ns, from->monotonic_ns, to->monotonic_ns);
  clocks.boottime_ns = Shift(clocks.boottime_ns, from->boottime_ns, to->boottime_ns);
  return clocks;
}

}  // namespace ember::snapshot
