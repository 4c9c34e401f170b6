#include "sandbox/netns_helper.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/child.h"
#include "sys/fd_passing.h"

namespace ember::sandbox {

const char* NetnsHelperStepName(NetnsHelperStep step) {
  switch (step) {
    case NetnsHelperStep::kReady:
      return "start the netns helper";
    case NetnsHelperStep::kCreated:
      return "create a network namespace";
    case NetnsHelperStep::kJoinUserNamespace:
      return "setns into the owner's user namespace";
    case NetnsHelperStep::kUnshareNetwork:
      return "unshare(CLONE_NEWNET)";
    case NetnsHelperStep::kLoopback:
      return "bring up lo";
    case NetnsHelperStep::kOpenNamespace:
      return "open /proc/self/ns/net";
  }
  return "unknown netns helper step";
}

namespace {

// The helper is forked, not exec'ed, so it holds a copy of every fd the daemon had open at that
// moment, close-on-exec or not. A copy of a sandbox's socket would keep its peer from ever
// seeing EOF, so everything but stdio and the helper's own two fds goes.
void CloseOtherFds(int keep_a, int keep_b) noexcept {
  const int keep[2] = {keep_a < keep_b ? keep_a : keep_b, keep_a < keep_b ? keep_b : keep_a};
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < static_cast<int>(next)) continue;
    if (static_cast<unsigned>(fd) > next) ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(next, ~0U, 0);
}

int SendReply(int sock, NetnsHelperReply reply, int fd) noexcept {
  ssize_t n = sys::SendWithFds(sock, &reply, sizeof reply, &fd, fd >= 0 ? 1 : 0);
  return n == static_cast<ssize_t>(sizeof reply) ? 0 : -1;
}

// Moves the helper into a new network namespace and opens it. The helper's previous namespace
// lives on only through the fd it already passed, so nothing piles up here.
NetnsHelperReply CreateNamespace(bool loopback, int* ns_fd) noexcept {
  if (::unshare(CLONE_NEWNET) != 0) return {NetnsHelperStep::kUnshareNetwork, errno};
  if (loopback) {
    if (int err = BringUpLoopback(); err != 0) return {NetnsHelperStep::kLoopback, err};
  }
  *ns_fd = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*ns_fd < 0) return {NetnsHelperStep::kOpenNamespace, errno};
  return {NetnsHelperStep::kCreated, 0};
}

}  // namespace

void RunNetnsHelper(const NetnsHelperArgs& args) noexcept {
  // The pool's thread may already be gone (then the signal would never come): check the parent
  // after arming it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != args.parent) ::_exit(1);
  CloseOtherFds(args.sock, args.user_ns);

  // Joining a user namespace needs a single-threaded caller, which a fresh fork is. Host root
  // holds CAP_SYS_ADMIN over every user namespace, and afterwards the helper has every
  // capability in the owner's namespace: enough to create network namespaces it owns.
  if (args.user_ns >= 0) {
    if (::setns(args.user_ns, CLONE_NEWUSER) != 0) {
      SendReply(args.sock, {NetnsHelperStep::kJoinUserNamespace, errno}, -1);
      ::_exit(1);
    }
    ::close(args.user_ns);
  }
  if (SendReply(args.sock, {NetnsHelperStep::kReady, 0}, -1) != 0) ::_exit(1);

  for (;;) {
    char request = 0;
    ssize_t n;
    do {
      n = ::recv(args.sock, &request, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) ::_exit(n == 0 ? 0 : 1);  // EOF: the pool closed its end
    int ns_fd = -1;
    NetnsHelperReply reply = CreateNamespace(args.loopback, &ns_fd);
    int sent = SendReply(args.sock, reply, ns_fd);
    if (ns_fd >= 0) ::close(ns_fd);
    if (sent != 0) ::_exit(1);
  }
}

}  // namespace ember::sandbox
