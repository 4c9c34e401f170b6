#include "snapshot/ptrace_session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "base/fs.h"

namespace ember::snapshot {
namespace {

// Enough rounds for a process that keeps spawning threads while we seize; a process that
// outruns this is refused rather than captured half-seized.
constexpr int kSeizeRounds = 64;
// Signals that a thread may take on its way into the interrupt stop (each is delivered).
constexpr int kMaxPassedSignals = 64;

Result<std::vector<pid_t>> ListTasks(pid_t pid) {
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory("/proc/" + std::to_string(pid) + "/task"));
  std::vector<pid_t> tids;
  for (const std::string& name : names) tids.push_back(std::stoi(name));
  std::sort(tids.begin(), tids.end());
  // The leader (tid == pid) first: restore recreates it first and ProcessState says so.
  auto leader = std::find(tids.begin(), tids.end(), pid);
  if (leader != tids.end()) std::rotate(tids.begin(), leader, leader + 1);
  return tids;
}

// A thread that has exited (zombie or dead) but may still be listed in /proc/PID/task.
bool ThreadIsGone(pid_t pid, pid_t tid) {
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  if (!stat) return true;
  size_t close = stat->rfind(')');
  return close == std::string::npos || close + 2 >= stat->size() || (*stat)[close + 2] == 'Z' ||
         (*stat)[close + 2] == 'X';
}

}  // namespace

Result<int> WaitForStop(pid_t tid, bool want_syscall_stop) {
  for (int passed = 0; passed <= kMaxPassedSignals; ++passed) {
    int status = 0;
    if (::waitpid(tid, &status, __WALL) < 0) {
      if (errno == EINTR) continue;
      return FailErrno("waitpid for thread " + std::to_string(tid));
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      return Fail(ErrorCode::kNotFound,
                  "thread " + std::to_string(tid) + " exited during checkpoint");
    }
    if (!WIFSTOPPED(status)) continue;
    int event = status >> 16;
    int sig = WSTOPSIG(status);
    if (event == PTRACE_EVENT_STOP && !want_syscall_stop) return status;
    if (want_syscall_stop && sig == (SIGTRAP | 0x80)) return status;
    if (event == PTRACE_EVENT_STOP) {
      return Fail(ErrorCode::kBusy,
                  "thread " + std::to_string(tid) + " entered a group stop during checkpoint");
    }
    // A signal-delivery stop (or an event we did not ask for): let the thread have the signal,
    // as it would have without us; the pending interrupt stops it again right after.
    // An injected syscall must stay under PTRACE_SYSCALL, or its exit stop would be missed.
    int pass = event == 0 ? sig : 0;
    auto resume = want_syscall_stop ? PTRACE_SYSCALL : PTRACE_CONT;
    if (::ptrace(resume, tid, nullptr, pass) != 0) {
      return FailErrno("resume thread " + std::to_string(tid) + " with signal " +
                       std::to_string(pass));
    }
  }
  return Fail(ErrorCode::kBusy, "thread " + std::to_string(tid) +
                                    " keeps receiving signals; it never reached a ptrace stop");
}

Result<PtraceSession> PtraceSession::Seize(pid_t pid) {
  PtraceSession session;
  session.pid_ = pid;
  for (int round = 0; round < kSeizeRounds; ++round) {
    EMBER_ASSIGN_OR_RETURN(auto tids, ListTasks(pid));
    bool added = false;
    for (pid_t tid : tids) {
      if (std::find(session.tids_.begin(), session.tids_.end(), tid) != session.tids_.end() ||
          std::find(session.gone_.begin(), session.gone_.end(), tid) != session.gone_.end()) {
        continue;
      }
      added = true;
      EMBER_TRY_CTX(session.SeizeThread(tid), "seize process " + std::to_string(pid));
    }
    if (!added) {
      if (session.tids_.empty() || session.tids_.front() != pid) {
        return Fail(ErrorCode::kUnsupported,
                    "process " + std::to_string(pid) + ": the thread-group leader has exited");
      }
      int fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return FailErrno("open /proc/" + std::to_string(pid) + "/mem");
      session.mem_.reset(fd);
      return session;
    }
  }
  return Fail(ErrorCode::kBusy,
              "process " + std::to_string(pid) + " kept creating threads while being seized");
}

Status PtraceSession::SeizeThread(pid_t tid) {
  if (::ptrace(PTRACE_SEIZE, tid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
    int err = errno;
    if (err == ESRCH || (err == EPERM && ThreadIsGone(pid_, tid))) {
      // Exited between the listing and the seize; a dead thread may stay listed for a moment
      // (ptrace refuses it with EPERM), so it must not count as new in the next pass.
      gone_.push_back(tid);
      return Ok();
    }
    return FailErrno("PTRACE_SEIZE thread " + std::to_string(tid), err);
  }
  tids_.push_back(tid);
  // Keep the leader first even when it is seized in a later round.
  if (tid == pid_) std::rotate(tids_.begin(), tids_.end() - 1, tids_.end());
  if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    return FailErrno("PTRACE_INTERRUPT thread " + std::to_string(tid));
  }
  auto stopped = WaitForStop(tid, /*want_syscall_stop=*/false);
  if (!stopped && stopped.error().code() == ErrorCode::kNotFound) {
    tids_.erase(std::find(tids_.begin(), tids_.end(), tid));  // it exited: nothing to detach
    gone_.push_back(tid);
    return Ok();
  }
  EMBER_TRY(stopped);
  return Ok();
}

Status PtraceSession::Detach(bool leave_stopped) {
  if (tids_.empty()) return Ok();
  if (leave_stopped && ::kill(pid_, SIGSTOP) != 0) {
    return FailErrno("queue SIGSTOP for process " + std::to_string(pid_));
  }
  Status result = Ok();
  for (pid_t tid : tids_) {
    if (::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) != 0 && errno != ESRCH && result) {
      result = FailErrno("PTRACE_DETACH thread " + std::to_string(tid));
    }
  }
  tids_.clear();
  mem_.reset();
  if (leave_stopped && result) {
    // The group stop happens as the threads leave the ptrace stop; wait until it is visible,
    // so the caller can rely on it when Detach returns.
    std::string stat_path = "/proc/" + std::to_string(pid_) + "/stat";
    for (int i = 0; i < 2000; ++i) {
      auto stat = ReadFile(stat_path);
      if (!stat) return Fail(stat.error());
      size_t close = stat->rfind(')');
      if (close != std::string::npos && stat->compare(close, 4, ") T ") == 0) return Ok();
      ::usleep(1000);
    }
    return Fail(ErrorCode::kTimeout,
                "process " + std::to_string(pid_) + " did not enter its group stop after detach");
  }
  return result;
}

PtraceSession::PtraceSession(PtraceSession&& other) noexcept
    : pid_(other.pid_), tids_(std::move(other.tids_)), mem_(std::move(other.mem_)) {
  other.tids_.clear();
}

PtraceSession& PtraceSession::operator=(PtraceSession&& other) noexcept {
  if (this != &other) {
    (void)Detach();
    pid_ = other.pid_;
    tids_ = std::move(other.tids_);
    other.tids_.clear();
    mem_ = std::move(other.mem_);
  }
  return *this;
}

PtraceSession::~PtraceSession() { (void)Detach(); }

}  // namespace ember::snapshot
