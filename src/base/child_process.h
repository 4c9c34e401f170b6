// A child process owned through a pidfd. The destructor kills (SIGKILL) and reaps a child that
// was not waited for, so an early return never leaks a process. Only children ember started are
// ever signalled: the pidfd pins the exact process, so a recycled pid can never be hit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember {

struct ExitStatus {
  bool signaled = false;
  int code = 0;  // exit code, or the signal number when signaled
  bool core_dumped = false;

  // Shell convention: the exit code, or 128 + signal.
  int ShellCode() const { return signaled ? 128 + code : code; }
  std::string Describe() const;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  // Takes ownership of an existing child by pid (opens a pidfd for it).
  static Result<ChildProcess> Adopt(pid_t pid);
  // fork+exec of argv with stdout/stderr captured when `capture` is set (for host tools such as
  // mkfs.erofs); the caller reads the output with WaitWithOutput.
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv, bool capture_output);

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  bool running() const { return pid_ > 0 && !reaped_; }

  Status Signal(int sig) const;
  // Blocks until the child exits; reaps it.
  Result<ExitStatus> Wait();
  // Waits at most `timeout`; nullopt if still running.
  Result<std::optional<ExitStatus>> WaitFor(std::chrono::milliseconds timeout);
  // For Spawn(capture_output=true): collects stdout+stderr, then waits.
  Result<std::pair<ExitStatus, std::string>> WaitWithOutput();
  // SIGKILL and reap; errors are ignored (used in destructors and cleanup paths).
  void KillAndReap();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd output_;  // read end of the captured stdout/stderr pipe, if any
  bool reaped_ = false;
};

// Runs argv to completion, capturing its output; fails with the output's tail if it exits
// non-zero. For host tools (mkfs.erofs, mmdebstrap).
Result<std::string> RunTool(const std::vector<std::string>& argv);

}  // namespace ember
