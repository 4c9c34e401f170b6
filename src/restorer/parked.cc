// A restore shell's wait (snapshot/shell_handoff.h): ember-restore exec'ed ahead of its instance
// blocks on fd 4 until the daemon hands it the plan, the image and the report channel, then
// takes the instance's hostname and continues as any restore does. Nothing of the process is
// touched before the handoff: a parked shell is a sandbox and this small binary, nothing more.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "restorer/restorer.h"
#include "snapshot/shell_handoff.h"

namespace ember::restorer {
namespace {

constexpr int kHandoffFd = 4;
constexpr int kFirstRestoreFd = 4;  // plan, image, report: 4, 5, 6 (main.cc)

}  // namespace

bool IsParked(const uint64_t* initial_sp) {
  if (initial_sp[0] < 2) return false;  // argc
  // NOLINTNEXTLINE(performance-no-int-to-ptr): argv pointers on the kernel's initial stack
  const auto* first_argument = reinterpret_cast<const char*>(initial_sp[2]);
  return SameString(first_argument, snapshot::kParkedFlag);
}

void AwaitHandoff() {
  snapshot::ShellHandoff handoff{};
  struct iovec iov = {&handoff, sizeof handoff};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * snapshot::kShellHandoffFds)];
  memset(control, 0, sizeof control);
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  long n;
  do {
    n = RawSyscall(SYS_recvmsg, kHandoffFd, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC);
  } while (n == -4 /* EINTR */);
  if (n == 0) ExitGroup(0);  // the daemon dropped the shell
  const struct cmsghdr* fds_message = CMSG_FIRSTHDR(&msg);
  bool well_formed =
      n == sizeof handoff && handoff.magic == snapshot::kShellHandoffMagic &&
      handoff.hostname_length > 0 && handoff.hostname_length <= snapshot::kShellHostnameMax &&
      (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) == 0 && fds_message != nullptr &&
      fds_message->cmsg_level == SOL_SOCKET && fds_message->cmsg_type == SCM_RIGHTS &&
      fds_message->cmsg_len == CMSG_LEN(sizeof(int) * snapshot::kShellHandoffFds);
  if (!well_formed) ExitGroup(125);  // no report channel to say more on
  int fds[snapshot::kShellHandoffFds];
  memcpy(fds, CMSG_DATA(fds_message), sizeof fds);
  // Received fds take the lowest free numbers, which may be 5 or 6: lift them all above 6 first,
  // then put each in place (dup3 onto 4 also closes the handoff socket).
  for (int& fd : fds) {
    long lifted = RawSyscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, kFirstRestoreFd + 3);
    if (IsError(lifted)) ExitGroup(125);
    RawSyscall(SYS_close, fd);
    fd = static_cast<int>(lifted);
  }
  for (int i = 0; i < static_cast<int>(snapshot::kShellHandoffFds); ++i) {
    if (IsError(RawSyscall(SYS_dup3, fds[i], kFirstRestoreFd + i, 0))) ExitGroup(125);
    RawSyscall(SYS_close, fds[i]);
  }
  // The report channel is in place: failures from here on are reported.
  g_ctx.report_fd = kFirstRestoreFd + 2;
  Check(RawSyscall(SYS_sethostname, reinterpret_cast<long>(handoff.hostname),
                   handoff.hostname_length),
        snapshot::kStageShellHandoff, 0);
}

}  // namespace ember::restorer
