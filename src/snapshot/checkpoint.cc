#include "snapshot/checkpoint.h"

#include <elf.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/fs.h"
#include "snapshot/compat_capture.h"
#include "snapshot/file_capture.h"
#include "snapshot/memory_capture.h"
#include "snapshot/proc_parsers.h"
#include "snapshot/process_capture.h"
#include "snapshot/ptrace_session.h"
#include "snapshot/root_path.h"
#include "snapshot/syscall_injector.h"
#include "snapshot/thread_capture.h"

namespace ember::snapshot {
namespace {

struct ThreadIds {
  pid_t host = 0;
  pid_t ns = 0;  // in the process's own pid namespace
};

tl::unexpected<Error> RefusePending(uint64_t set, const std::string& whom) {
  int sig = proc::FirstSignal(set);
  return Fail(ErrorCode::kUnsupported,
              "signal " + proc::SignalName(sig) + " (" + std::to_string(sig) + ") is pending for " +
                  whom + "; ember cannot checkpoint a process with a pending signal");
}

// Pending signals are refused: the kernel offers no way to queue them again with their
// siginfo at restore. Also learns each thread's tid in its own pid namespace.
Result<std::vector<ThreadIds>> CheckThreads(pid_t pid, const std::vector<pid_t>& tids,
                                            ProcessState& state) {
  std::string proc = "/proc/" + std::to_string(pid);
  EMBER_ASSIGN_OR_RETURN(auto stat_text, ReadFile(proc + "/stat"));
  EMBER_ASSIGN_OR_RETURN(auto stat, proc::ParseStat(stat_text));
  if (stat.state == 'Z') {
    return Fail(ErrorCode::kUnsupported, "process " + std::to_string(pid) +
                                             ": its main thread has exited while others run on");
  }
  EMBER_ASSIGN_OR_RETURN(auto status_text, ReadFile(proc + "/status"));
  EMBER_ASSIGN_OR_RETURN(auto status, proc::ParseStatus(status_text));
  state.umask = status.umask;
  state.pending_signals = status.shd_pnd;
  if (status.shd_pnd != 0) return RefusePending(status.shd_pnd, "the process");
  std::vector<ThreadIds> ids;
  for (pid_t tid : tids) {
    std::string task = proc + "/task/" + std::to_string(tid) + "/status";
    EMBER_ASSIGN_OR_RETURN(auto text, ReadFile(task));
    EMBER_ASSIGN_OR_RETURN(auto thread, proc::ParseStatus(text));
    if (thread.sig_pnd != 0) {
      return RefusePending(thread.sig_pnd, "thread " + std::to_string(thread.ns_pid.back()));
    }
    ids.push_back({tid, thread.ns_pid.back()});
  }
  state.pid = ids.front().ns;
  return ids;
}

Result<std::vector<uint64_t>> ReadAuxv(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto bytes, ReadFile(path));
  std::vector<uint64_t> auxv(bytes.size() / sizeof(uint64_t));
  std::memcpy(auxv.data(), bytes.data(), auxv.size() * sizeof(uint64_t));
  // Keep the pairs up to and including AT_NULL.
  for (size_t i = 0; i + 1 < auxv.size(); i += 2) {
    if (auxv[i] == AT_NULL) {
      auxv.resize(i + 2);
      return auxv;
    }
  }
  return Fail(ErrorCode::kCorrupt, path + " has no AT_NULL entry");
}

Result<std::string> ResolveLink(const std::string& link, const SandboxRoot& root,
                                const std::string& what) {
  char buf[4096];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) return FailErrno("readlink " + link);
  struct stat held;
  if (::stat(link.c_str(), &held) != 0) return FailErrno("stat " + link);
  EMBER_ASSIGN_OR_RETURN(auto rooted,
                         ResolveInRoot(root, std::string(buf, static_cast<size_t>(n)), held, what));
  return rooted.path;
}

// Everything but the session: runs while every thread is held in its ptrace stop.
Result<ProcessState> Capture(PtraceSession& session, const CheckpointOptions& options) {
  pid_t pid = session.pid();
  std::string proc = "/proc/" + std::to_string(pid);
  EMBER_ASSIGN_OR_RETURN(auto root, SandboxRootOf(pid, options.root));
  ProcessState state;
  // First: every thread is stopped since the seize, so no clock value the process has seen is
  // above these, and a restore continues from here.
  EMBER_ASSIGN_OR_RETURN(state.clocks, CaptureClocks(pid));

  // Refusals first: they are cheap and tell the caller what to change.
  EMBER_ASSIGN_OR_RETURN(auto ids, CheckThreads(pid, session.tids(), state));
  EMBER_ASSIGN_OR_RETURN(state.files, CaptureFiles(pid, root, options.control_fd));
  EMBER_ASSIGN_OR_RETURN(auto maps_text, ReadFile(proc + "/maps"));
  EMBER_ASSIGN_OR_RETURN(auto maps, proc::ParseMaps(maps_text));
  EMBER_ASSIGN_OR_RETURN(auto smaps_text, ReadFile(proc + "/smaps"));
  EMBER_ASSIGN_OR_RETURN(auto vm_flags, proc::ParseSmapsVmFlags(smaps_text));
  EMBER_ASSIGN_OR_RETURN(state.areas, PlanAreas(maps, vm_flags));
  EMBER_TRY(ResolveAreaFiles(root, maps, state.areas));

  auto vdso_area = std::find_if(state.areas.begin(), state.areas.end(),
                                [](const MemoryArea& a) { return a.kind == AreaKind::kVdso; });
  if (vdso_area == state.areas.end()) {
    return Fail(ErrorCode::kUnsupported, "process has no [vdso] (booted with vdso=0?)");
  }
  EMBER_ASSIGN_OR_RETURN(auto vdso, ReadMemory(session.mem_fd(), vdso_area->start, vdso_area->end));
  EMBER_ASSIGN_OR_RETURN(uint64_t syscall_insn, FindSyscallInstruction(vdso, vdso_area->start));

  std::map<pid_t, pid_t> ns_tids;
  for (const ThreadIds& id : ids) ns_tids[id.host] = id.ns;
  for (const ThreadIds& id : ids) {
    EMBER_ASSIGN_OR_RETURN(auto injector,
                           SyscallInjector::Attach(id.host, session.mem_fd(), syscall_insn));
    EMBER_ASSIGN_OR_RETURN(auto thread, CaptureThread(id.host, id.ns, injector));
    state.threads.push_back(std::move(thread));
    if (id.host == pid) {
      // Process-wide state, asked through the leader.
      EMBER_ASSIGN_OR_RETURN(state.signals, CaptureSignalActions(injector));
      EMBER_ASSIGN_OR_RETURN(state.mm.brk, CaptureBrk(injector));
      EMBER_ASSIGN_OR_RETURN(state.itimers, CaptureIntervalTimers(injector));
      EMBER_ASSIGN_OR_RETURN(state.posix_timers, CapturePosixTimers(pid, injector, ns_tids));
    }
    EMBER_TRY(injector.Finish());
  }

  // After the injections, so the stack bytes under the scratch area are the original ones.
  EMBER_TRY(CaptureContents(pid, session.mem_fd(), state.areas));

  EMBER_ASSIGN_OR_RETURN(auto stat_text, ReadFile(proc + "/stat"));
  EMBER_ASSIGN_OR_RETURN(auto stat, proc::ParseStat(stat_text));
  uint64_t brk = state.mm.brk;
  state.mm = stat.mm;
  state.mm.brk = brk;
  EMBER_ASSIGN_OR_RETURN(state.mm.auxv, ReadAuxv(proc + "/auxv"));

  for (int r = 0; r < static_cast<int>(state.rlimits.size()); ++r) {
    rlimit limit;
    if (::prlimit(pid, static_cast<__rlimit_resource>(r), nullptr, &limit) != 0) {
      return FailErrno("prlimit " + std::to_string(r) + " of process " + std::to_string(pid));
    }
    state.rlimits[r] = {limit.rlim_cur, limit.rlim_max};
  }
  EMBER_ASSIGN_OR_RETURN(state.cwd, ResolveLink(proc + "/cwd", root, "the working directory"));
  EMBER_ASSIGN_OR_RETURN(state.exe, ResolveLink(proc + "/exe", root, "the executable"));
  EMBER_ASSIGN_OR_RETURN(state.compat, CaptureCompat(vdso, state.areas, root));
  return state;
}

}  // namespace

Result<ProcessState> Checkpoint(pid_t pid, const CheckpointOptions& options) {
  std::string what = "checkpoint process " + std::to_string(pid);
  // A process in a group stop would be resumed by the injected syscalls; refuse it up front.
  auto stat_text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat_text) return Fail(std::move(stat_text).error().Context(what));
  auto stat = proc::ParseStat(*stat_text);
  if (!stat) return Fail(std::move(stat).error().Context(what));
  if (stat->state == 'T') {
    return Fail(ErrorCode::kBusy, what + ": the process is stopped (SIGSTOP); continue it first");
  }
  EMBER_ASSIGN_OR_RETURN(auto session, PtraceSession::Seize(pid).map_error(
                                           [&](Error e) { return std::move(e).Context(what); }));
  auto state = Capture(session, options);
  if (!state) return Fail(std::move(state).error().Context(what));
  EMBER_TRY_CTX(session.Detach(options.leave_stopped), what);
  return state;
}

}  // namespace ember::snapshot
