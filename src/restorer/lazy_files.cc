// InstallLazyFiles and the listener handoff (lazy_files.h).
#include "restorer/lazy_files.h"

#include <asm/unistd_64.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "restorer/syscall.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

namespace ember::restorer {
namespace {

void Close(int fd) {
  if (fd >= 0) RawSyscall(__NR_close, fd);
}

void RemovePlaceholders(const LazyFile* files, int placed, int placeholder) {
  for (int i = 0; i < placed; ++i) Close(files[i].fd);
  Close(placeholder);
}

// Installs `prog` with a listener. WAIT_KILLABLE_RECV (5.19+) keeps a signal from interrupting a
// syscall whose notification the reconnector already holds: otherwise the syscall restarts and
// is trapped a second time. Older kernels reject the flag with EINVAL; the plain listener is
// still correct there, only slower under signals.
long InstallFilterWithListener(const sock_filter* prog, int length) {
  const sock_fprog fprog{static_cast<unsigned short>(length), const_cast<sock_filter*>(prog)};
  long listener =
      RawSyscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                 SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                 reinterpret_cast<long>(&fprog));
  if (listener == -EINVAL) {
    listener = RawSyscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                          reinterpret_cast<long>(&fprog));
  }
  return listener;
}

}  // namespace

int InstallLazyFiles(const LazyFile* files, int count, int* listener_out, int* placeholder_out) {
  if (listener_out == nullptr || placeholder_out == nullptr) return -EINVAL;
  *listener_out = -1;
  *placeholder_out = -1;
  if (count == 0) return 0;

  // Static, not on the stack: 32 KiB is more than the restorer's stack should carry, and this
  // runs once, before the process has threads.
  static sock_filter prog[BPF_MAXINSNS];
  const int length = BuildLazyFileFilter(files, count, prog, BPF_MAXINSNS);
  if (length < 0) return length;

  int max_fd = 0;
  for (int i = 0; i < count; ++i) {
    // The reconnector opens paths from its own cwd: only absolute paths mean the same there.
    if (files[i].path == nullptr || files[i].path[0] != '/') return -EINVAL;
    // A lazy number already in use would be silently replaced by the placeholder.
    if (RawSyscall(__NR_fcntl, files[i].fd, F_GETFD) != -EBADF) return -EBUSY;
    if (files[i].fd > max_fd) max_fd = files[i].fd;
  }

  // The first open may land on a lazy number; the placeholder itself lives above all of them.
  const long root =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/"), O_PATH | O_CLOEXEC);
  if (IsError(root)) return static_cast<int>(root);
  const long placeholder = RawSyscall(__NR_fcntl, root, F_DUPFD_CLOEXEC, max_fd + 1);
  Close(static_cast<int>(root));
  if (IsError(placeholder)) return static_cast<int>(placeholder);

  for (int i = 0; i < count; ++i) {
    const long r =
        RawSyscall(__NR_dup3, placeholder, files[i].fd, files[i].cloexec ? O_CLOEXEC : 0);
    if (IsError(r)) {
      RemovePlaceholders(files, i, static_cast<int>(placeholder));
      return static_cast<int>(r);
    }
  }

  // NEW_LISTENER without CAP_SYS_ADMIN needs no_new_privs; the sandbox sets it anyway.
  long r = RawSyscall(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (!IsError(r)) r = InstallFilterWithListener(prog, length);
  if (IsError(r)) {
    RemovePlaceholders(files, count, static_cast<int>(placeholder));
    return static_cast<int>(r);
  }
  // The listener takes the lowest free number; move it above the lazy fds too, so the caller
  // gets two fds that cannot collide with anything the restore still has to place below.
  const long listener = RawSyscall(__NR_fcntl, r, F_DUPFD_CLOEXEC, max_fd + 1);
  Close(static_cast<int>(r));
  if (IsError(listener)) {
    // The filter stays (it cannot be removed) but has no listener: every lazy number now
    // answers ENOSYS. The caller must abandon this restore.
    Close(static_cast<int>(placeholder));
    return static_cast<int>(listener);
  }
  *listener_out = static_cast<int>(listener);
  *placeholder_out = static_cast<int>(placeholder);
  return 0;
}

int SendLazyHandoff(int sock, int listener, int placeholder) {
  if (listener < 0) return -EINVAL;
  const int fds[2] = {listener, placeholder};
  const int nfds = placeholder >= 0 ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))] = {};
  char byte = 'L';
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  long r;
  do {
    r = RawSyscall(__NR_sendmsg, sock, reinterpret_cast<long>(&msg), MSG_NOSIGNAL);
  } while (r == -EINTR);
  return IsError(r) ? static_cast<int>(r) : 0;
}

int ReceiveLazyHandoff(int sock, int* listener_out, int* placeholder_out) {
  if (listener_out == nullptr || placeholder_out == nullptr) return -EINVAL;
  *listener_out = -1;
  *placeholder_out = -1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  char byte = 0;
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  long r;
  do {
    r = RawSyscall(__NR_recvmsg, sock, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC);
  } while (r == -EINTR);
  if (IsError(r)) return static_cast<int>(r);
  if (r == 0) return -EPIPE;  // the restored side went away before handing over
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len < CMSG_LEN(sizeof(int))) {
    return -EPROTO;
  }
  int fds[2] = {-1, -1};
  const unsigned long nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
  memcpy(fds, CMSG_DATA(cmsg), sizeof(int) * (nfds >= 2 ? 2 : 1));
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || nfds > 2) {
    Close(fds[0]);
    Close(fds[1]);
    return -EPROTO;
  }
  *listener_out = fds[0];
  *placeholder_out = fds[1];
  return 0;
}

}  // namespace ember::restorer
