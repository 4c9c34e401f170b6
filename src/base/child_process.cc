#include "base/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "sys/syscalls.h"

namespace ember {

std::string ExitStatus::Describe() const {
  if (signaled) {
    const char* name = sigabbrev_np(code);
    return std::string("killed by SIG") + (name ? name : "?") +
           (core_dumped ? " (core dumped)" : "");
  }
  return "exited with status " + std::to_string(code);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      output_(std::move(other.output_)),
      reaped_(std::exchange(other.reaped_, false)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    output_ = std::move(other.output_);
    reaped_ = std::exchange(other.reaped_, false);
  }
  return *this;
}

ChildProcess::~ChildProcess() { KillAndReap(); }

Result<ChildProcess> ChildProcess::Adopt(pid_t pid) {
  int fd = sys::PidfdOpen(pid);
  if (fd < 0) return FailErrno("pidfd_open " + std::to_string(pid));
  return ChildProcess(pid, UniqueFd(fd));
}

Result<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                         bool capture_output) {
  if (argv.empty()) return Fail(ErrorCode::kInvalidArgument, "spawn: empty command");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int pipefd[2] = {-1, -1};
  if (capture_output && ::pipe2(pipefd, O_CLOEXEC) != 0) return FailErrno("pipe2");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  // An exec failure is reported through a CLOEXEC pipe: EOF means exec succeeded.
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) return FailErrno("pipe2");
  UniqueFd err_read(errpipe[0]), err_write(errpipe[1]);

  int pidfd = -1;
  struct clone_args args {};
  args.flags = CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = sys::Clone3(&args);
  if (pid < 0) return FailErrno("clone3 for " + argv[0]);
  if (pid == 0) {
    if (capture_output) {
      ::dup2(write_end.get(), STDOUT_FILENO);
      ::dup2(write_end.get(), STDERR_FILENO);
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    }
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    (void)!::write(err_write.get(), &e, sizeof e);
    ::_exit(127);
  }
  err_write.reset();
  write_end.reset();
  ChildProcess child(static_cast<pid_t>(pid), UniqueFd(pidfd));
  child.output_ = std::move(read_end);
  int exec_errno = 0;
  if (::read(err_read.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    (void)child.Wait();
    return FailErrno("exec " + argv[0], exec_errno);
  }
  return child;
}

Status ChildProcess::Signal(int sig) const {
  if (!running()) return Fail(ErrorCode::kInvalidArgument, "signal: process already reaped");
  if (sys::PidfdSendSignal(pidfd_.get(), sig) != 0 && errno != ESRCH) {
    return FailErrno("pidfd_send_signal " + std::to_string(pid_));
  }
  return Ok();
}

Result<ExitStatus> ChildProcess::Wait() {
  if (!running()) return Fail(ErrorCode::kInvalidArgument, "wait: no running child");
  siginfo_t info{};
  while (::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED) != 0) {
    if (errno != EINTR) return FailErrno("waitid " + std::to_string(pid_));
  }
  reaped_ = true;
  ExitStatus status;
  status.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  status.core_dumped = info.si_code == CLD_DUMPED;
  status.code = info.si_status;
  return status;
}

Result<std::optional<ExitStatus>> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  struct pollfd pfd {
    pidfd_.get(), POLLIN, 0
  };
  int n;
  do {
    n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return FailErrno("poll pidfd");
  if (n == 0) return std::optional<ExitStatus>();
  EMBER_ASSIGN_OR_RETURN(auto status, Wait());
  return std::optional<ExitStatus>(status);
}

Result<std::pair<ExitStatus, std::string>> ChildProcess::WaitWithOutput() {
  std::string output;
  if (output_) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(output_.get(), buf, sizeof buf);
      if (n > 0) {
        output.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    output_.reset();
  }
  EMBER_ASSIGN_OR_RETURN(auto status, Wait());
  return std::make_pair(status, std::move(output));
}

void ChildProcess::KillAndReap() {
  if (!running()) return;
  sys::PidfdSendSignal(pidfd_.get(), SIGKILL);
  siginfo_t info{};
  while (::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED) != 0 && errno == EINTR) {
  }
  reaped_ = true;
}

Result<std::string> RunTool(const std::vector<std::string>& argv) {
  EMBER_ASSIGN_OR_RETURN(auto child, ChildProcess::Spawn(argv, /*capture_output=*/true));
  EMBER_ASSIGN_OR_RETURN(auto result, child.WaitWithOutput());
  auto& [status, output] = result;
  if (status.signaled || status.code != 0) {
    std::string tail = output.size() > 600 ? "…" + output.substr(output.size() - 600) : output;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    return Fail(ErrorCode::kIo,
                argv[0] + " " + status.Describe() + (tail.empty() ? "" : ": " + tail));
  }
  return output;
}

}  // namespace ember
