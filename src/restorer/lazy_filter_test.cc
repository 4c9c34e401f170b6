// The lazy-file filter, evaluated without installing it (sandbox/seccomp_eval.h), plus the
// syscall table it is built from.
#include <asm/unistd_64.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "restorer/lazy_files.h"
#include "restorer/lazy_syscalls.h"
#include "sandbox/seccomp_eval.h"

namespace ember::restorer {
namespace {

std::vector<sock_filter> Build(const std::vector<LazyFile>& files) {
  std::vector<sock_filter> prog(BPF_MAXINSNS);
  const int n = BuildLazyFileFilter(files.data(), static_cast<int>(files.size()), prog.data(),
                                    static_cast<int>(prog.size()));
  EXPECT_GT(n, 0);
  prog.resize(n > 0 ? n : 0);
  return prog;
}

LazyFile File(int fd) { return LazyFile{fd, 0, 0, 0, "/x"}; }

uint32_t Verdict(const std::vector<sock_filter>& prog, int nr, std::vector<uint64_t> args = {},
                 uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  for (size_t i = 0; i < args.size() && i < 6; ++i) d.args[i] = args[i];
  const auto action = sandbox::EvaluateSeccomp(prog, d);
  EXPECT_TRUE(action.has_value()) << "malformed program";
  return action.value_or(0xdeadbeef);
}

constexpr uint32_t kNotify = SECCOMP_RET_USER_NOTIF;
constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;

TEST(LazySyscallTable, SortedAndFindable) {
  for (int i = 0; i < kLazySyscallCount; ++i) {
    if (i > 0) {
      EXPECT_LT(kLazySyscalls[i - 1].nr, kLazySyscalls[i].nr) << "entry " << i;
    }
    EXPECT_EQ(FindLazySyscall(kLazySyscalls[i].nr), &kLazySyscalls[i]);
    EXPECT_NE(kLazySyscalls[i].use_args | kLazySyscalls[i].replace_args |
                  (kLazySyscalls[i].kind == LazySyscallKind::kCloseRange ? 1 : 0),
              0)
        << "nr " << kLazySyscalls[i].nr << " names no fd";
  }
  EXPECT_EQ(FindLazySyscall(__NR_getpid), nullptr);
  EXPECT_EQ(FindLazySyscall(-1), nullptr);
  EXPECT_EQ(FindLazySyscall(100000), nullptr);
  ASSERT_NE(FindLazySyscall(__NR_close), nullptr);
  EXPECT_EQ(FindLazySyscall(__NR_close)->replace_args, 1);
  EXPECT_EQ(FindLazySyscall(__NR_dup3)->use_args, 1);
  EXPECT_EQ(FindLazySyscall(__NR_dup3)->replace_args, 2);
}

TEST(LazyFileFilter, TrapsReadOfALazyFdOnly) {
  const auto prog = Build({File(7), File(9)});
  EXPECT_EQ(Verdict(prog, __NR_read, {7, 0, 10}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_read, {9, 0, 10}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_read, {8, 0, 10}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_read, {0, 0, 10}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_write, {1, 0, 10}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_read, {1000, 0, 10}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_getpid), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_futex, {7, 7, 7, 7, 7, 7}), kAllow);
}

TEST(LazyFileFilter, ComparesTheLow32BitsLikeTheKernel) {
  const auto prog = Build({File(7)});
  // The kernel truncates an fd argument to int: garbage in the high half still names fd 7.
  EXPECT_EQ(Verdict(prog, __NR_read, {0xffffffff00000007ULL}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_read, {0x0000000700000000ULL}), kAllow);
}

TEST(LazyFileFilter, EveryFdArgumentOfEveryListedSyscallIsTrapped) {
  const auto prog = Build({File(5), File(7), File(40)});
  for (int i = 0; i < kLazySyscallCount; ++i) {
    const LazySyscall& s = kLazySyscalls[i];
    if (s.kind == LazySyscallKind::kCloseRange) continue;
    const uint8_t fd_args = s.use_args | s.replace_args;
    for (int k = 0; k < 6; ++k) {
      if ((fd_args & (1u << k)) == 0) continue;
      for (const uint64_t fd : {5, 7, 40}) {
        std::vector<uint64_t> args(6, 6);  // 6: not lazy
        args[3] = s.kind == LazySyscallKind::kMmap && k != 3 ? MAP_PRIVATE : args[3];
        args[k] = fd;
        EXPECT_EQ(Verdict(prog, s.nr, args), kNotify)
            << "nr " << s.nr << " arg " << k << " fd " << fd;
      }
      std::vector<uint64_t> args(6, 6);
      EXPECT_EQ(Verdict(prog, s.nr, args), kAllow) << "nr " << s.nr;
    }
  }
}

TEST(LazyFileFilter, AnonymousMmapIgnoresItsFdArgument) {
  const auto prog = Build({File(7)});
  EXPECT_EQ(Verdict(prog, __NR_mmap, {0, 4096, PROT_READ, MAP_PRIVATE, 7, 0}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_mmap, {0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 7, 0}),
            kAllow);
  EXPECT_EQ(Verdict(prog, __NR_mmap, {0, 4096, PROT_READ, MAP_SHARED, 3, 0}), kAllow);
}

TEST(LazyFileFilter, CloseRangeOverALazyFdIsTrapped) {
  const auto prog = Build({File(7), File(9)});
  EXPECT_EQ(Verdict(prog, __NR_close_range, {3, 0xffffffff, 0}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {9, 9, 0}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {8, 8, 0}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {10, 20, 0}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {0, 6, 0}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {8, 9, 0}), kNotify);
}

TEST(LazyFileFilter, ForeignAbisAreRefused) {
  const auto prog = Build({File(7)});
  EXPECT_EQ(Verdict(prog, 3 /* i386 read */, {7}, AUDIT_ARCH_I386), SECCOMP_RET_ERRNO | ENOSYS);
  EXPECT_EQ(Verdict(prog, 0x40000000 | __NR_read, {7}), SECCOMP_RET_ERRNO | ENOSYS);
  EXPECT_EQ(Verdict(prog, 0x40000000 | __NR_getpid), SECCOMP_RET_ERRNO | ENOSYS);
}

TEST(LazyFileFilter, HandlesTheMostFilesItPromises) {
  std::vector<LazyFile> files;
  for (int i = 0; i < kMaxLazyFiles; ++i) files.push_back(File(1000 + 3 * i));
  const auto prog = Build(files);
  ASSERT_LE(prog.size(), static_cast<size_t>(BPF_MAXINSNS));
  EXPECT_EQ(Verdict(prog, __NR_pread64, {1000 + 3 * (kMaxLazyFiles - 1)}), kNotify);
  EXPECT_EQ(Verdict(prog, __NR_pread64, {1001}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {1001, 1002, 0}), kAllow);
  EXPECT_EQ(Verdict(prog, __NR_close_range, {1001, 1003, 0}), kNotify);
}

TEST(LazyFileFilter, RejectsBadInput) {
  std::vector<sock_filter> prog(BPF_MAXINSNS);
  const int cap = BPF_MAXINSNS;
  const LazyFile twice[] = {File(7), File(7)};
  const LazyFile negative[] = {File(-1)};
  const LazyFile one[] = {File(7)};
  EXPECT_EQ(BuildLazyFileFilter(twice, 2, prog.data(), cap), -EINVAL);
  EXPECT_EQ(BuildLazyFileFilter(negative, 1, prog.data(), cap), -EINVAL);
  EXPECT_EQ(BuildLazyFileFilter(one, 0, prog.data(), cap), -EINVAL);
  EXPECT_EQ(BuildLazyFileFilter(nullptr, 1, prog.data(), cap), -EINVAL);
  EXPECT_EQ(BuildLazyFileFilter(one, 1, prog.data(), 10), -ENOSPC);
  std::vector<LazyFile> many(kMaxLazyFiles + 1);
  for (int i = 0; i <= kMaxLazyFiles; ++i) many[i] = File(i);
  EXPECT_EQ(BuildLazyFileFilter(many.data(), kMaxLazyFiles + 1, prog.data(), cap), -EINVAL);
  // The exact size fits; one less does not.
  const int n = BuildLazyFileFilter(one, 1, prog.data(), cap);
  ASSERT_GT(n, 0);
  EXPECT_EQ(BuildLazyFileFilter(one, 1, prog.data(), n), n);
  EXPECT_EQ(BuildLazyFileFilter(one, 1, prog.data(), n - 1), -ENOSPC);
}

}  // namespace
}  // namespace ember::restorer
