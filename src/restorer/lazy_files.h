// On-demand I/O reconnection (Catalyzer): regular files the process had open at checkpoint are
// reopened on first use, not at restore. A restore that never touches a file never opens it.
//
// How (seccomp user notification, no ptrace, no LD_PRELOAD):
//   1. Before the restored code runs, every lazy fd number holds a *placeholder*: one O_PATH fd
//      of "/" dup3'ed onto each number, so the process's own opens never take a lazy number.
//   2. A seccomp filter (BuildLazyFileFilter) turns every syscall that names one of those
//      numbers in an fd argument (the list is in lazy_syscalls.h) into a user notification.
//      Everything else is allowed by this filter (other filters still apply).
//   3. A small reconnector process (RunReconnector), running as the sandbox's user inside the
//      sandbox, receives each notification. If the named fd still holds the placeholder it
//      opens the recorded path with the recorded flags, seeks to the recorded offset, installs
//      the file at that fd number in the caller (SECCOMP_IOCTL_NOTIF_ADDFD, SETFD) and lets the
//      syscall run (SECCOMP_USER_NOTIF_FLAG_CONTINUE). If the reopen fails the syscall fails
//      with that errno (a deleted file: ENOENT from read), instead of touching the placeholder.
//      A close/dup2/dup3/close_range that replaces a pending fd never reopens it.
//
// "Still holds the placeholder" is decided with kcmp(KCMP_FILE) against the reconnector's own
// copy of the placeholder, so it is right per fd table: after fork (Python's subprocess) the
// child and the parent each reopen on their own first use, and a child closing its copy does not
// affect the parent. When kcmp is refused (the reconnector may not ptrace-read the process, or no
// placeholder was handed over), a per-number state machine (pending -> reopened | closed) is used
// instead; it is exact for a process that does not fork with pending lazy fds (and whose
// dup2/dup3 onto a pending fd does not fail: a failed one still counts as a close).
//
// What it costs, and what it cannot see:
//   * A seccomp filter cannot be removed, so every later syscall on a lazy fd number (the
//     reopened file, or whatever the process opened there after closing it) still goes to the
//     reconnector and back: two context switches, 10-15 us per call on this 2-vCPU host (a
//     plain pread: under 1 us; the first use, with the reopen: ~60 us). Files used in a hot loop
//     should not be recorded as lazy. Syscalls on other fd numbers cost only the filter's few BPF
//     instructions (a syscall-number tree, then a range check on the fd argument). The filter
//     and its cost are inherited by every child and survive exec.
//   * Fds reaching the kernel inside memory, not in a register, are not seen: poll/select/epoll
//     sets, sendmsg(SCM_RIGHTS), io_submit iocbs, io_uring. Those, and any syscall not in the
//     list of lazy_syscalls.h, see the placeholder while the fd is pending: an O_PATH fd of "/"
//     (poll reports POLLNVAL, SCM_RIGHTS passes that O_PATH fd, io_submit fails with EBADF).
//     Once the fd was reopened they see the real file.
//   * The kernel allows one listener per filter tree, so the restored process cannot create a
//     seccomp listener of its own (EBUSY); the sandbox's policy does not let it anyway.
//   * Reopened files get a fresh open file description: after fork, parent and child that both
//     reopen a pending fd no longer share its offset (before the restore they did).
//   * If the reconnector dies, every syscall on a lazy number fails with ENOSYS (the kernel's
//     answer when a filter's listener is gone).
//
// In ember-restore (the restorer's order, all before any thread exists):
//   1. fill a static LazyFile[] from the plan's kReopenLazy files (paths point into the plan,
//      which the reconnector's copy of the address space keeps);
//   2. socketpair; clone3 the reconnector with set_tid = a pid no recorded thread uses (a plain
//      fork would take the namespace's next free pid, which StartThreads may need) and
//      exit_signal 0; early, before the memory is restored, so the fork copies only the
//      restorer. The child drops to the sandbox's uid/gid with no capability and
//      no_new_privs, but installs NOT the sandbox's seccomp policy (it denies kcmp and the
//      listener's ioctls; the reconnector confines itself), then ServeLazyFiles(its end, ...);
//   3. after the eager files are in place: InstallLazyFiles, SendLazyHandoff, close the
//      listener, the placeholder copy and the socket;
//   4. keep the process dumpable after the uid switch (PR_SET_DUMPABLE 1): kcmp needs it.
//
// Freestanding (raw syscalls, no allocation, no libc): it runs in ember-restore.
#pragma once

#include <linux/filter.h>
#include <stdint.h>

namespace ember::restorer {

// One regular file recorded at checkpoint (snapshot::FileDescriptor of kind kRegular).
struct LazyFile {
  int32_t fd;          // the number the process knows it by
  int32_t open_flags;  // O_* as recorded; O_CREAT/O_TRUNC/O_EXCL are dropped on reopen
  uint64_t offset;     // file position to restore
  uint8_t cloexec;     // FD_CLOEXEC on the restored fd
  const char* path;    // absolute, inside the sandbox's root, NUL-terminated
};

// Most lazy fds one restore handles; keeps the filter well under BPF_MAXINSNS.
inline constexpr int kMaxLazyFiles = 128;

// Writes the filter for `files` into out[0, capacity). Returns the number of instructions, or
// -EINVAL (no files, more than kMaxLazyFiles, a negative or repeated fd), -ENOSPC (capacity too
// small). Layout: architecture check (anything but x86-64 and x32 numbers: ERRNO(ENOSYS), the
// sandbox's own filter rejects them anyway), a binary tree over the syscall numbers of
// lazy_syscalls.h, and one block per argument pattern comparing the low 32 bits of each fd
// argument (the kernel truncates fd arguments to int) with the lazy numbers.
int BuildLazyFileFilter(const LazyFile* files, int count, sock_filter* out, int capacity);

// In the calling thread, which must be the process's only thread (no TSYNC): puts the
// placeholder on every lazy fd number (each must be free: -EBUSY otherwise; each path must be
// absolute: -EINVAL otherwise), sets no_new_privs
// and installs the filter with a listener. On success returns 0 and two new O_CLOEXEC fds,
// both at numbers above every lazy fd: *listener_out (the notification fd) and *placeholder_out
// (a copy of the placeholder, for the reconnector's kcmp). Hand both to the reconnector
// (SendLazyHandoff) and close them. With count == 0 it does nothing and returns -1 in both.
// On failure returns -errno and leaves no placeholder and no filter behind.
int InstallLazyFiles(const LazyFile* files, int count, int* listener_out, int* placeholder_out);

// Passes the listener and placeholder (-1: none) over a connected unix socket (SCM_RIGHTS).
// Returns 0 or -errno.
int SendLazyHandoff(int sock, int listener, int placeholder);
// Receives them (O_CLOEXEC); *placeholder_out is -1 if none was sent. Returns 0 or -errno.
int ReceiveLazyHandoff(int sock, int* listener_out, int* placeholder_out);

// What the reconnector writes to its events fd after each open it attempts.
struct ReconnectEvent {
  int32_t fd;      // the lazy fd number
  int32_t result;  // 0: installed; else -errno of the open, lseek or ADDFD that failed
  int32_t tid;     // the thread whose syscall asked for it (in the reconnector's pid namespace)
};

// The reconnector's loop. Closes every fd but `listener`, `placeholder` (-1: no kcmp, state
// machine only) and `events_fd` (-1: no events; made O_NONBLOCK, an event that does not fit is
// dropped rather than stall the restored process) first, so it holds nothing of the restorer's (no
// control channel, no log pipe). Serves notifications until every task using the filter is gone
// (the listener reports POLLHUP), then exits 0; exits 1 if the listener itself fails. Once set
// up it confines itself with a seccomp allowlist of its own loop's calls (lazy_reconnector.cc).
// `files` must stay valid (it is not copied). Must run in a process that is NOT under the lazy
// filter (fork it before InstallLazyFiles), with the sandbox's credentials, mount namespace and a
// pid namespace that sees the restored process.
[[noreturn]] void RunReconnector(int listener, int placeholder, const LazyFile* files, int count,
                                 int events_fd);

// The whole life of a reconnector process forked by the restorer: closes every fd but
// `handoff_sock` and `events_fd`, waits for the handoff (SendLazyHandoff from the restored
// process), closes the socket, then RunReconnector. Exits 0 without serving if the other end
// closes first (the restore failed), 1 on a malformed handoff.
[[noreturn]] void ServeLazyFiles(int handoff_sock, const LazyFile* files, int count, int events_fd);

}  // namespace ember::restorer
