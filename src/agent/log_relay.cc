#include "agent/log_relay.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace ember::agent {
namespace {

struct Relay {
  int from = -1;  // the pipe's read end
  int to = -1;    // the template's log socket
  pthread_t thread{};
  bool running = false;
};
Relay g_relay;

void* RelayMain(void* /*unused*/) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(g_relay.from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return nullptr;  // every writer is gone
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(g_relay.to, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return nullptr;  // the daemon is gone
      done += w;
    }
  }
}

}  // namespace

Status StartLogRelay() {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return FailErrno("log relay: pipe");
  int to = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (to < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return FailErrno("log relay: dup stdout");
  }
  g_relay.from = pipe_fds[0];
  g_relay.to = to;
  int rc = ::pthread_create(&g_relay.thread, nullptr, &RelayMain, nullptr);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::close(to);
    g_relay = Relay{};
    return FailErrno("log relay: pthread_create", rc);
  }
  g_relay.running = true;
  // fds 1 and 2 (inherited by subprocesses, unlike the relay's own fds) are the pipe from now on.
  ::dup2(pipe_fds[1], 1);
  ::dup2(pipe_fds[1], 2);
  ::close(pipe_fds[1]);
  return Ok();
}

void FinishLogRelay() {
  if (!g_relay.running) return;
  ::close(1);
  ::close(2);
  // A subprocess left running may hold the pipe open: the relay then keeps going on its own
  // until the process ends, and the agent does not wait for it.
  struct timespec deadline {};
  ::clock_gettime(CLOCK_REALTIME, &deadline);
  constexpr long kWaitNs = 200'000'000;
  constexpr long kSecondNs = 1'000'000'000;
  deadline.tv_nsec += kWaitNs;
  if (deadline.tv_nsec >= kSecondNs) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= kSecondNs;
  }
  ::pthread_timedjoin_np(g_relay.thread, nullptr, &deadline);
  g_relay.running = false;
}

}  // namespace ember::agent
