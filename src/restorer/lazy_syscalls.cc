#include "restorer/lazy_syscalls.h"

#include <asm/unistd_64.h>

namespace ember::restorer {
namespace {

constexpr uint8_t A0 = 1 << 0, A1 = 1 << 1, A2 = 1 << 2, A3 = 1 << 3, A4 = 1 << 4;
constexpr LazySyscallKind kPlain = LazySyscallKind::kPlain;

// Newer than the kernel headers of Debian 12 (6.1); numbers from syscall_64.tbl.
constexpr int32_t kNrCachestat = 451, kNrFchmodat2 = 452, kNrSetxattrat = 463, kNrGetxattrat = 464,
                  kNrListxattrat = 465, kNrRemovexattrat = 466, kNrOpenTreeAttr = 467,
                  kNrFileGetattr = 468, kNrFileSetattr = 469;

}  // namespace

const LazySyscall kLazySyscalls[] = {
    {__NR_read, A0, 0, kPlain},
    {__NR_write, A0, 0, kPlain},
    {__NR_close, 0, A0, kPlain},
    {__NR_fstat, A0, 0, kPlain},
    {__NR_lseek, A0, 0, kPlain},
    {__NR_mmap, A4, 0, LazySyscallKind::kMmap},
    {__NR_ioctl, A0, 0, kPlain},
    {__NR_pread64, A0, 0, kPlain},
    {__NR_pwrite64, A0, 0, kPlain},
    {__NR_readv, A0, 0, kPlain},
    {__NR_writev, A0, 0, kPlain},
    {__NR_dup, A0, 0, kPlain},
    {__NR_dup2, A0, A1, kPlain},
    {__NR_sendfile, A0 | A1, 0, kPlain},
    {__NR_fcntl, A0, 0, kPlain},
    {__NR_flock, A0, 0, kPlain},
    {__NR_fsync, A0, 0, kPlain},
    {__NR_fdatasync, A0, 0, kPlain},
    {__NR_ftruncate, A0, 0, kPlain},
    {__NR_getdents, A0, 0, kPlain},
    {__NR_fchdir, A0, 0, kPlain},
    {__NR_fchmod, A0, 0, kPlain},
    {__NR_fchown, A0, 0, kPlain},
    {__NR_fstatfs, A0, 0, kPlain},
    {__NR_readahead, A0, 0, kPlain},
    {__NR_fsetxattr, A0, 0, kPlain},
    {__NR_fgetxattr, A0, 0, kPlain},
    {__NR_flistxattr, A0, 0, kPlain},
    {__NR_fremovexattr, A0, 0, kPlain},
    {__NR_getdents64, A0, 0, kPlain},
    {__NR_fadvise64, A0, 0, kPlain},
    {__NR_epoll_ctl, A2, 0, kPlain},
    {__NR_openat, A0, 0, kPlain},
    {__NR_mkdirat, A0, 0, kPlain},
    {__NR_mknodat, A0, 0, kPlain},
    {__NR_fchownat, A0, 0, kPlain},
    {__NR_futimesat, A0, 0, kPlain},
    {__NR_newfstatat, A0, 0, kPlain},
    {__NR_unlinkat, A0, 0, kPlain},
    {__NR_renameat, A0 | A2, 0, kPlain},
    {__NR_linkat, A0 | A2, 0, kPlain},
    {__NR_symlinkat, A1, 0, kPlain},
    {__NR_readlinkat, A0, 0, kPlain},
    {__NR_fchmodat, A0, 0, kPlain},
    {__NR_faccessat, A0, 0, kPlain},
    {__NR_splice, A0 | A2, 0, kPlain},
    {__NR_tee, A0 | A1, 0, kPlain},
    {__NR_sync_file_range, A0, 0, kPlain},
    {__NR_vmsplice, A0, 0, kPlain},
    {__NR_utimensat, A0, 0, kPlain},
    {__NR_fallocate, A0, 0, kPlain},
    {__NR_dup3, A0, A1, kPlain},
    {__NR_preadv, A0, 0, kPlain},
    {__NR_pwritev, A0, 0, kPlain},
    {__NR_fanotify_mark, A0 | A3, 0, kPlain},
    {__NR_name_to_handle_at, A0, 0, kPlain},
    {__NR_open_by_handle_at, A0, 0, kPlain},
    {__NR_syncfs, A0, 0, kPlain},
    {__NR_renameat2, A0 | A2, 0, kPlain},
    {__NR_execveat, A0, 0, kPlain},
    {__NR_copy_file_range, A0 | A2, 0, kPlain},
    {__NR_preadv2, A0, 0, kPlain},
    {__NR_pwritev2, A0, 0, kPlain},
    {__NR_statx, A0, 0, kPlain},
    {__NR_open_tree, A0, 0, kPlain},
    {__NR_move_mount, A0 | A2, 0, kPlain},
    {__NR_fspick, A0, 0, kPlain},
    {__NR_close_range, 0, 0, LazySyscallKind::kCloseRange},
    {__NR_openat2, A0, 0, kPlain},
    {__NR_faccessat2, A0, 0, kPlain},
    {__NR_mount_setattr, A0, 0, kPlain},
    {__NR_quotactl_fd, A0, 0, kPlain},
    {kNrCachestat, A0, 0, kPlain},
    {kNrFchmodat2, A0, 0, kPlain},
    {kNrSetxattrat, A0, 0, kPlain},
    {kNrGetxattrat, A0, 0, kPlain},
    {kNrListxattrat, A0, 0, kPlain},
    {kNrRemovexattrat, A0, 0, kPlain},
    {kNrOpenTreeAttr, A0, 0, kPlain},
    {kNrFileGetattr, A0, 0, kPlain},
    {kNrFileSetattr, A0, 0, kPlain},
};

const int kLazySyscallCount = sizeof(kLazySyscalls) / sizeof(kLazySyscalls[0]);

const LazySyscall* FindLazySyscall(int32_t nr) {
  int lo = 0, hi = kLazySyscallCount;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (kLazySyscalls[mid].nr == nr) return &kLazySyscalls[mid];
    if (kLazySyscalls[mid].nr < nr) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return nullptr;
}

}  // namespace ember::restorer
