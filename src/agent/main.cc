// ember-agent: pid 1 of every ember sandbox. It talks to the daemon on the stream socket it
// inherits as fd 3 (protocol.h, docs/protocol.md); fds 1 and 2 are the instance's log.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "agent/agent_loop.h"
#include "agent/log_relay.h"

namespace {

constexpr int kControlFd = 3;

// A closed fd 0-2 would be reused by the next open(), and the handler's output or the process
// runtime's pipes would land somewhere unexpected.
void EnsureStandardFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0 && null_fd != fd) {
      ::dup2(null_fd, fd);
      ::close(null_fd);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("ember-agent %s\n", EMBER_VERSION);
    return 0;
  }
  // A daemon that went away is an EPIPE to handle, not a signal that kills pid 1.
  ::signal(SIGPIPE, SIG_IGN);
  if (::fcntl(kControlFd, F_GETFD) < 0) {
    std::fprintf(stderr,
                 "ember-agent: fd %d is not open: the agent runs inside an ember sandbox and "
                 "speaks to the daemon on fd %d\n",
                 kControlFd, kControlFd);
    return ember::agent::kExitBadStart;
  }
  EnsureStandardFds();
  // Nothing the handler starts (subprocesses, the process runtime's shell) inherits the socket.
  ::fcntl(kControlFd, F_SETFD, FD_CLOEXEC);
  int code = ember::agent::RunAgent(kControlFd);
  std::fflush(stdout);
  std::fflush(stderr);
  ember::agent::FinishLogRelay();
  // _exit, not return: worker threads may still be inside a handler, and neither the embedded
  // interpreter nor a native library may be torn down under them by static destructors.
  ::_exit(code);
}
