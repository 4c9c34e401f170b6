// RunReconnector: the process that reopens lazy files on first use (lazy_files.h).
//
// One notification at a time, on purpose: every syscall that could change what a lazy fd number
// holds (close, dup2/dup3 onto it, close_range over it) is itself trapped, so while the
// reconnector is deciding about fd N nothing else can move N under it: the decision "N still
// holds the placeholder" stays true until the ADDFD that replaces it.
#include <asm/unistd_64.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/ioctl.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "restorer/lazy_files.h"
#include "restorer/lazy_syscalls.h"
#include "restorer/syscall.h"

namespace ember::restorer {
namespace {

enum class FdState : uint8_t { kPending, kReopened, kClosed };

enum class Role : uint8_t { kNone, kUse, kReplace };

// Newer than the kernel headers of Debian 12 (6.1): include/uapi/linux/seccomp.h of 6.6.
constexpr unsigned long kIoctlNotifSetFlags = _IOW('!', 4, uint64_t);  // NOTIF_SET_FLAGS
constexpr uint64_t kSyncWakeUp = 1;  // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP

// What handling a notification came to.
constexpr long kTargetGone = 1;  // the task died or the notification was withdrawn: no answer

[[noreturn]] void Exit(int code) {
  for (;;) RawSyscall(__NR_exit_group, code);
}

uint32_t Low32(uint64_t v) { return static_cast<uint32_t>(v); }

// Closes every fd but the (up to three) to keep, so the reconnector holds nothing of the
// restorer's: a control socket or log pipe kept open here would hide the instance's death.
void CloseAllBut(int a, int b, int c) {
  int keep[3] = {a, b, c};
  for (int i = 0; i < 3; ++i) {  // sort three values
    for (int j = i + 1; j < 3; ++j) {
      if (keep[j] < keep[i]) {
        const int t = keep[i];
        keep[i] = keep[j];
        keep[j] = t;
      }
    }
  }
  unsigned int next = 0;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned int>(fd) < next) continue;
    if (static_cast<unsigned int>(fd) > next) RawSyscall(__NR_close_range, next, fd - 1, 0);
    next = static_cast<unsigned int>(fd) + 1;
  }
  RawSyscall(__NR_close_range, next, ~0U, 0);
}

// The reconnector's own allowlist, installed once its setup is done: it acts on data from the
// process it serves, so it keeps only the calls of its loop (ioctl only on the listener, write
// only to the events fd); anything else kills it, and the process then sees ENOSYS on its lazy
// fds rather than a reconnector doing something it never should. Returns 0 or -errno.
long ConfineSelf(int listener, int events_fd) {
  constexpr uint32_t kArg0 = offsetof(seccomp_data, args);
  constexpr int kAnyFd[] = {__NR_poll,  __NR_openat,       __NR_lseek,
                            __NR_close, __NR_kcmp,         __NR_exit_group,
                            __NR_exit,  __NR_rt_sigreturn, __NR_restart_syscall};
  sock_filter prog[48];
  int n = 0;
  const auto emit = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
    prog[n++] = sock_filter{code, jt, jf, k};
  };
  emit(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch), 0, 0);
  emit(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  emit(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
  emit(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr), 0, 0);
  for (const int nr : kAnyFd) {
    emit(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1);
    emit(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
  }
  // A == nr: ioctl needs arg0 == listener, write needs arg0 == events_fd, the rest is killed.
  emit(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 2);                        // -> write?
  emit(BPF_LD | BPF_W | BPF_ABS, kArg0, 0, 0);                              //
  emit(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(listener), 3, 4);   // -> allow / kill
  emit(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 0, 3);                        // -> kill
  emit(BPF_LD | BPF_W | BPF_ABS, kArg0, 0, 0);                              //
  emit(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(events_fd), 0, 1);  // -> allow / kill
  emit(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
  emit(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
  const sock_fprog fprog{static_cast<unsigned short>(n), prog};
  const long r = RawSyscall(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (IsError(r)) return r;
  return RawSyscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(&fprog));
}

class Reconnector {
 public:
  Reconnector(int listener, int placeholder, const LazyFile* files, int count, int events_fd)
      : listener_(listener),
        placeholder_(placeholder),
        files_(files),
        count_(count),
        events_fd_(events_fd),
        self_(static_cast<int>(RawSyscall(__NR_getpid))) {
    for (int i = 0; i < count_; ++i) state_[i] = FdState::kPending;
  }

  // Returns the response to send, or kTargetGone when there is nobody to answer.
  long Handle(const seccomp_notif& n, seccomp_notif_resp* resp) {
    resp->id = n.id;
    resp->val = 0;
    resp->error = 0;
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    const LazySyscall* s = FindLazySyscall(n.data.nr);
    if (s == nullptr) return 0;
    if (s->kind == LazySyscallKind::kMmap && (n.data.args[3] & MAP_ANONYMOUS) != 0) return 0;
    for (int i = 0; i < count_; ++i) {
      const Role role = RoleOf(*s, n.data, static_cast<uint32_t>(files_[i].fd));
      if (role == Role::kReplace) {
        state_[i] = FdState::kClosed;
        continue;
      }
      if (role != Role::kUse) continue;
      const int pending = IsPending(i, n);
      if (pending < 0) return kTargetGone;
      if (pending == 0) continue;
      const long r = Reopen(i, n);
      if (r == kTargetGone) return kTargetGone;
      if (r < 0) {
        resp->error = static_cast<int32_t>(r);
        resp->val = -1;
        resp->flags = 0;
        return 0;
      }
    }
    return 0;
  }

  [[noreturn]] void Loop();

 private:
  static Role RoleOf(const LazySyscall& s, const seccomp_data& d, uint32_t fd) {
    if (s.kind == LazySyscallKind::kCloseRange) {
      if (Low32(d.args[0]) > fd || Low32(d.args[1]) < fd) return Role::kNone;
      return (Low32(d.args[2]) & CLOSE_RANGE_CLOEXEC) != 0 ? Role::kUse : Role::kReplace;
    }
    // A use wins over a replace: dup2(7, 7) needs fd 7 to be the real file.
    for (int k = 0; k < 6; ++k) {
      if ((s.use_args & (1u << k)) != 0 && Low32(d.args[k]) == fd) return Role::kUse;
    }
    for (int k = 0; k < 6; ++k) {
      if ((s.replace_args & (1u << k)) != 0 && Low32(d.args[k]) == fd) return Role::kReplace;
    }
    return Role::kNone;
  }

  // 1: fd still holds the placeholder in the caller's fd table; 0: it does not; -1: caller gone.
  int IsPending(int i, const seccomp_notif& n) {
    if (placeholder_ >= 0 && n.pid > 0) {
      const long r = RawSyscall(__NR_kcmp, self_, n.pid, KCMP_FILE, placeholder_, files_[i].fd);
      if (r == -ESRCH) return -1;
      if (r == -EBADF) return 0;  // nothing at that number: the syscall's own EBADF is right
      if (!IsError(r)) {
        // The pid was read from the notification; make sure it still names the same task.
        uint64_t id = n.id;
        if (IsError(RawSyscall(__NR_ioctl, listener_, SECCOMP_IOCTL_NOTIF_ID_VALID,
                               reinterpret_cast<long>(&id)))) {
          return -1;
        }
        return r == 0 ? 1 : 0;
      }
      // EPERM (not allowed to ptrace-read the caller) and the like: the state machine decides.
    }
    return state_[i] == FdState::kPending ? 1 : 0;
  }

  // 0 installed, kTargetGone, or -errno for the caller's syscall.
  long Reopen(int i, const seccomp_notif& n) {
    const LazyFile& f = files_[i];
    const int flags = (f.open_flags & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_CLOEXEC | O_NOCTTY;
    const long fd = RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(f.path), flags);
    if (IsError(fd)) return Report(f.fd, fd, n.pid);
    if (f.offset != 0 && (f.open_flags & O_PATH) == 0) {
      const long r = RawSyscall(__NR_lseek, fd, static_cast<long>(f.offset), SEEK_SET);
      if (IsError(r)) {
        RawSyscall(__NR_close, fd);
        return Report(f.fd, r, n.pid);
      }
    }
    seccomp_notif_addfd addfd{};
    addfd.id = n.id;
    addfd.flags = SECCOMP_ADDFD_FLAG_SETFD;
    addfd.srcfd = static_cast<uint32_t>(fd);
    addfd.newfd = static_cast<uint32_t>(f.fd);
    addfd.newfd_flags = f.cloexec ? O_CLOEXEC : 0;
    const long r = RawSyscall(__NR_ioctl, listener_, SECCOMP_IOCTL_NOTIF_ADDFD,
                              reinterpret_cast<long>(&addfd));
    RawSyscall(__NR_close, fd);
    Report(f.fd, IsError(r) ? r : 0, n.pid);
    if (r == -ENOENT) return kTargetGone;
    if (IsError(r)) return r;
    state_[i] = FdState::kReopened;
    return 0;
  }

  long Report(int fd, long result, int tid) {
    if (events_fd_ >= 0) {
      const ReconnectEvent e{fd, static_cast<int32_t>(result), tid};
      // Best effort: a full or closed events pipe must not stop the reconnection.
      RawSyscall(__NR_write, events_fd_, reinterpret_cast<long>(&e), sizeof(e));
    }
    return result;
  }

  int listener_;
  int placeholder_;
  const LazyFile* files_;
  int count_;
  int events_fd_;
  int self_;
  FdState state_[kMaxLazyFiles];
};

void Reconnector::Loop() {
  // The kernel copies its own struct size; refuse to run if that outgrew ours.
  seccomp_notif_sizes sizes{};
  if (IsError(
          RawSyscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, reinterpret_cast<long>(&sizes))) ||
      sizes.seccomp_notif > sizeof(seccomp_notif) ||
      sizes.seccomp_notif_resp > sizeof(seccomp_notif_resp)) {
    Exit(1);
  }
  // Synchronous wake-ups (6.6+): the notification and its answer hand the CPU straight between
  // the trapped thread and us (the kernel's intended mode for a supervisor that answers at
  // once). On this 2-vCPU host a call on a reopened lazy fd costs 10-15 us either way (a pipe
  // round trip: 5 us), the first use ~60 us. Older kernels reject the ioctl; everything still
  // works.
  uint64_t sync_flags = kSyncWakeUp;
  RawSyscall(__NR_ioctl, listener_, kIoctlNotifSetFlags, reinterpret_cast<long>(&sync_flags));
  // Refusal to confine (a kernel without seccomp filters) is not worth failing the restore for.
  ConfineSelf(listener_, events_fd_);
  for (;;) {
    pollfd p{listener_, POLLIN, 0};
    const long ready = RawSyscall(__NR_poll, reinterpret_cast<long>(&p), 1, -1);
    if (ready == -EINTR) continue;
    if (IsError(ready)) Exit(1);
    if ((p.revents & POLLIN) == 0) {
      // POLLHUP: no task uses the filter any more; the restored process is gone.
      if ((p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) Exit((p.revents & POLLHUP) ? 0 : 1);
      continue;
    }
    seccomp_notif n{};  // RECV refuses a buffer that is not zeroed
    const long r =
        RawSyscall(__NR_ioctl, listener_, SECCOMP_IOCTL_NOTIF_RECV, reinterpret_cast<long>(&n));
    if (r == -EINTR || r == -ENOENT) continue;  // ENOENT: the caller died before we read it
    if (IsError(r)) Exit(1);
    seccomp_notif_resp resp{};
    if (Handle(n, &resp) == kTargetGone) continue;
    // ENOENT here too means the caller went away meanwhile; nothing to do.
    RawSyscall(__NR_ioctl, listener_, SECCOMP_IOCTL_NOTIF_SEND, reinterpret_cast<long>(&resp));
  }
}

}  // namespace

void ServeLazyFiles(int handoff_sock, const LazyFile* files, int count, int events_fd) {
  // Before waiting: anything of the restorer held here (its sync pipe, report channel, the
  // instance's stdio) would hide a restore that dies before the handoff.
  CloseAllBut(handoff_sock, events_fd, -1);
  int listener = -1, placeholder = -1;
  const int r = ReceiveLazyHandoff(handoff_sock, &listener, &placeholder);
  RawSyscall(__NR_close, handoff_sock);
  // EPIPE: the restore failed before the handoff; whoever restores reports that, not us.
  if (r != 0) Exit(r == -EPIPE ? 0 : 1);
  RunReconnector(listener, placeholder, files, count, events_fd);
}

void RunReconnector(int listener, int placeholder, const LazyFile* files, int count,
                    int events_fd) {
  if (listener < 0 || files == nullptr || count <= 0 || count > kMaxLazyFiles) Exit(1);
  CloseAllBut(listener, placeholder, events_fd);
  // An events reader that went away must give EPIPE, not a SIGPIPE that ends the reconnection.
  uint64_t sigpipe = 1ULL << (SIGPIPE - 1);
  RawSyscall(__NR_rt_sigprocmask, SIG_BLOCK, reinterpret_cast<long>(&sigpipe), 0, sizeof(sigpipe));
  // A reader that stops draining the events must not stall the restored process behind us.
  if (events_fd >= 0) {
    const long fl = RawSyscall(__NR_fcntl, events_fd, F_GETFL);
    if (!IsError(fl)) RawSyscall(__NR_fcntl, events_fd, F_SETFL, fl | O_NONBLOCK);
  }
  Reconnector reconnector(listener, placeholder, files, count, events_fd);
  reconnector.Loop();
}

}  // namespace ember::restorer
