#include "agent/process_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace ember::agent {
namespace {

// What the child reports over the error pipe when it cannot exec. Nothing between fork and exec
// allocates; the stage is a fixed string chosen by index.
struct ChildFailure {
  int stage;
  int error;
};
constexpr const char* kStages[] = {"set up stdio", "chdir to the code directory", "exec /bin/sh"};

[[noreturn]] void ChildFail(int error_pipe, int stage) {
  ChildFailure failure{stage, errno};
  (void)!::write(error_pipe, &failure, sizeof failure);
  ::_exit(127);
}

}  // namespace

Result<HandlerProcess> SpawnHandlerProcess(const std::string& command,
                                           const std::string& code_dir) {
  std::string what = "start `/bin/sh -c " + command + "` in " + code_dir;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return FailErrno(what + ": pipe2");
  UniqueFd child_stdin(in_pipe[0]), to_child(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return FailErrno(what + ": pipe2");
  UniqueFd from_child(out_pipe[0]), child_stdout(out_pipe[1]);
  // Exec failure is reported through a CLOEXEC pipe: EOF there means exec succeeded.
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return FailErrno(what + ": pipe2");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);

  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return FailErrno(what + ": fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the agent died before the prctl took effect
    // Pipe ends are above fd 2 (0-2 are open in the agent), so dup2 cannot clobber one of them.
    if (::dup2(child_stdin.get(), STDIN_FILENO) < 0 ||
        ::dup2(child_stdout.get(), STDOUT_FILENO) < 0) {
      ChildFail(err_write.get(), 0);
    }
    // The agent ignores SIGPIPE, and an ignored signal stays ignored across exec: restore the
    // default so a shell pipeline in the handler behaves as it would anywhere else.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t all;
    ::sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    if (::chdir(code_dir.c_str()) != 0) ChildFail(err_write.get(), 1);
    ::execve("/bin/sh", const_cast<char* const*>(argv), environ);
    ChildFail(err_write.get(), 2);
  }
  err_write.reset();
  child_stdin.reset();
  child_stdout.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(err_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof failure) {
    ::waitpid(pid, nullptr, 0);
    int stage = failure.stage >= 0 && failure.stage < 3 ? failure.stage : 2;
    return FailErrno(what + ": " + kStages[stage], failure.error);
  }
  auto child = ChildProcess::Adopt(pid);
  if (!child) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Fail(std::move(child).error().Context(what));
  }
  return HandlerProcess{std::move(*child), std::move(to_child), std::move(from_child)};
}

}  // namespace ember::agent
