// The x86-64 syscalls that take a file descriptor in a register, and which arguments those are:
// the one table both the lazy-file filter (which traps them) and the reconnector (which decides
// what a trapped call needs) read, so the two cannot disagree.
//
// A "use" argument names an fd whose file the call works on (read, fstat, mmap, the dirfd of
// openat, the source of dup2): a pending lazy fd there is reopened first. A "replace" argument
// names an fd the call closes or overwrites (close, the target of dup2/dup3): a pending lazy fd
// there is dropped without a reopen. close_range names a range; with CLOSE_RANGE_CLOEXEC it
// only marks fds, so it counts as a use (the flag must land on the real file).
//
// Included because the file's identity matters to them: every read/write/seek/stat/sync/
// allocate/advise/lock/xattr/mmap/splice/sendfile call on an fd, fcntl and ioctl, dup*, fchdir/
// fchmod/fchown, every *at() call with a dirfd (openat, newfstatat, statx, execveat, ...),
// epoll_ctl's target fd. Left out: fds inside memory (see lazy_files.h) and calls whose fd cannot
// be a regular file or that the sandbox denies (setns, finit_module, fsconfig, pidfd_*).
#pragma once

#include <stdint.h>

namespace ember::restorer {

enum class LazySyscallKind : uint8_t {
  kPlain,
  kMmap,        // the fd (arg 4) counts only when MAP_ANONYMOUS (arg 3) is clear
  kCloseRange,  // close_range(first, last, flags): every fd in [first, last]
};

struct LazySyscall {
  int32_t nr;
  uint8_t use_args;      // bit k: argument k is an fd the call uses
  uint8_t replace_args;  // bit k: argument k is an fd the call closes or overwrites
  LazySyscallKind kind;
};

// Sorted by nr, no repeats.
extern const LazySyscall kLazySyscalls[];
extern const int kLazySyscallCount;

// The entry for `nr`, or nullptr if the filter lets `nr` through untouched.
const LazySyscall* FindLazySyscall(int32_t nr);

}  // namespace ember::restorer
