// The memory shim's pure parts: its seccomp filter (run through the BPF interpreter, so inputs
// a live process cannot make are covered), the range merging, and the /proc/self/maps reader.
#include "restorer/memory_shim_filter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "restorer/memory_shim_maps.h"
#include "sandbox/seccomp_eval.h"

namespace ember::restorer {
namespace {

constexpr uint64_t kStubReturn = 0x100000001234;
constexpr uint32_t kTrap = SECCOMP_RET_TRAP | kShimTrapData;
constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;

// The calls below come from 0x401000 unless told otherwise: inside the first code range.
const std::vector<AddressRange> kCode = {{0x400000, 0x500000}, {0x7f1000000000, 0x7f1000200000}};

std::vector<sock_filter> Build(const std::vector<AddressRange>& ranges,
                               const std::vector<AddressRange>& code = kCode) {
  std::vector<sock_filter> out(kMaxShimFilterLength);
  const int n = BuildMemoryShimFilter(kStubReturn, ranges.data(), static_cast<int>(ranges.size()),
                                      code.data(), static_cast<int>(code.size()), out.data(),
                                      static_cast<int>(out.size()));
  EXPECT_GT(n, 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

uint32_t Eval(const std::vector<sock_filter>& prog, int nr, uint64_t a0, uint64_t a1,
              uint64_t a2 = 0, uint64_t ip = 0x401000, uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data data{};
  data.nr = nr;
  data.arch = arch;
  data.instruction_pointer = ip;
  data.args[0] = a0;
  data.args[1] = a1;
  data.args[2] = a2;
  const auto action = sandbox::EvaluateSeccomp(prog, data);
  EXPECT_TRUE(action.has_value());
  return action.value_or(0xdead);
}

TEST(MemoryShimFilter, TrapsZeroingAdvicesOnlyInsideImageRanges) {
  const auto prog = Build({{0x10000, 0x20000}, {0x7f0000000000, 0x7f0000100000}});
  for (int advice : kShimAdvices) {
    EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, advice), kTrap) << advice;
    EXPECT_EQ(Eval(prog, SYS_madvise, 0x7f0000050000, 0x1000, advice), kTrap) << advice;
  }
  for (int advice : {MADV_NORMAL, MADV_WILLNEED, MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE,
                     MADV_KEEPONFORK, MADV_POPULATE_WRITE}) {
    EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, advice), kAllow) << advice;
  }
  // Outside both ranges, and touching a range's edge without overlapping it.
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x30000, 0x1000, MADV_DONTNEED), kAllow);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0xf000, 0x1000, MADV_DONTNEED), kAllow);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x20000, 0x1000, MADV_DONTNEED), kAllow);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x7f0000100000, 0x1000, MADV_DONTNEED), kAllow);
  // Starting below a range and reaching into it; covering a range whole.
  EXPECT_EQ(Eval(prog, SYS_madvise, 0xf000, 0x1001, MADV_DONTNEED), kTrap);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x1000, 0x7f0000000000, MADV_DONTNEED), kTrap);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x7effff000000, 0x2000000, MADV_FREE), kTrap);
  // The kernel reads the advice as an int: garbage in the high half does not hide DONTNEED.
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, 0xffffffff00000004ULL), kTrap);
}

TEST(MemoryShimFilter, LengthCarriesIntoTheHighHalf) {
  // [0x1_ffff_f000, +0x2000) ends at 0x2_0000_1000: the low halves wrap.
  const auto prog = Build({{0x200000000, 0x200010000}});
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x1fffff000, 0x2000, MADV_DONTNEED), kTrap);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x1fffff000, 0x1000, MADV_DONTNEED), kAllow);
  EXPECT_EQ(Eval(prog, SYS_mremap, 0x1fffff000, 0x2000, 0x4000), kTrap);
}

TEST(MemoryShimFilter, TrapsMremapOfImageRangesWhateverTheSizes) {
  const auto prog = Build({{0x10000, 0x20000}});
  EXPECT_EQ(Eval(prog, SYS_mremap, 0x10000, 0x1000, 0x8000), kTrap);
  EXPECT_EQ(Eval(prog, SYS_mremap, 0x1f000, 0x1000, 0x800), kTrap);
  EXPECT_EQ(Eval(prog, SYS_mremap, 0x20000, 0x1000, 0x8000), kAllow);
}

TEST(MemoryShimFilter, LetsTheShimsOwnCallsAndOtherSyscallsThrough) {
  const auto prog = Build({{0x10000, 0x20000}});
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, kStubReturn), kAllow);
  EXPECT_EQ(Eval(prog, SYS_mremap, 0x10000, 0x1000, 0x8000, kStubReturn), kAllow);
  // Same low half, other high half: not the shim (trapped where no code ranges restrict it).
  const auto anywhere = Build({{0x10000, 0x20000}}, {});
  EXPECT_EQ(Eval(anywhere, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, 0x1234), kTrap);
  EXPECT_EQ(Eval(prog, SYS_munmap, 0x10000, 0x1000), kAllow);
  EXPECT_EQ(Eval(prog, SYS_mmap, 0x10000, 0x1000), kAllow);
  // i386 numbers mean something else (219 is not madvise there).
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, 0x401000, AUDIT_ARCH_I386),
            kAllow);
}

TEST(MemoryShimFilter, AllowsSigactionOfSigsysFromAnywhere) {
  // A trap is a forced SIGSYS: it would kill a vfork child that resets SIGSYS with every signal
  // blocked (CPython's subprocess).
  const auto prog = Build({{0x10000, 0x20000}});
  const auto anywhere = Build({{0x10000, 0x20000}}, {});
  for (const auto* filter : {&prog, &anywhere}) {
    EXPECT_EQ(Eval(*filter, SYS_rt_sigaction, SIGSYS, 0x5000), kAllow);
    EXPECT_EQ(Eval(*filter, SYS_rt_sigaction, SIGSYS, 0, 8, 0x7f2000000000), kAllow);
    EXPECT_EQ(Eval(*filter, SYS_rt_sigaction, SIGSYS, 0x5000, 8, kStubReturn), kAllow);
    EXPECT_EQ(Eval(*filter, SYS_rt_sigaction, SIGSEGV, 0x5000), kAllow);
    EXPECT_EQ(Eval(*filter, SYS_rt_sigprocmask, SIGSYS, 0x5000), kAllow);
  }
}

TEST(MemoryShimFilter, TrapsOnlyCallsFromTheRestoredProcesssCode) {
  // An exec'ed program's libc is elsewhere: its calls must not trap (its SIGSYS is fatal).
  const auto prog = Build({{0x10000, 0x20000}});
  for (uint64_t ip :
       {0x401000ULL, 0x400000ULL, 0x4fffffULL, 0x7f1000000002ULL, 0x7f10001fffffULL}) {
    EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, ip), kTrap) << ip;
    EXPECT_EQ(Eval(prog, SYS_mremap, 0x10000, 0x1000, 0x8000, ip), kTrap) << ip;
  }
  for (uint64_t ip : {0x3fffffULL, 0x500000ULL, 0x100400000ULL, 0x7f0fffffffffULL,
                      0x7f1000200000ULL, 0x7f2000000000ULL, 0x401000ULL | (1ULL << 40)}) {
    EXPECT_EQ(Eval(prog, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, ip), kAllow) << ip;
    EXPECT_EQ(Eval(prog, SYS_mremap, 0x10000, 0x1000, 0x8000, ip), kAllow) << ip;
  }
  // Without code ranges, from anywhere.
  const auto anywhere = Build({{0x10000, 0x20000}}, {});
  EXPECT_EQ(Eval(anywhere, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, 0x7f2000000000), kTrap);
  EXPECT_EQ(Eval(anywhere, SYS_madvise, 0x10000, 0x1000, MADV_DONTNEED, kStubReturn), kAllow);
}

TEST(MemoryShimFilter, RejectsBadRangeLists) {
  std::vector<sock_filter> out(kMaxShimFilterLength);
  const int capacity = static_cast<int>(out.size());
  AddressRange unsorted[] = {{0x20000, 0x30000}, {0x10000, 0x18000}};
  AddressRange empty_range[] = {{0x20000, 0x20000}};
  AddressRange good[] = {{0x10000, 0x18000}};
  auto build = [&](AddressRange* image, int n, AddressRange* code, int m, int cap) {
    return BuildMemoryShimFilter(kStubReturn, image, n, code, m, out.data(), cap);
  };
  EXPECT_EQ(build(unsorted, 2, nullptr, 0, capacity), -EINVAL);
  EXPECT_EQ(build(empty_range, 1, nullptr, 0, capacity), -EINVAL);
  EXPECT_EQ(build(good, 0, nullptr, 0, capacity), -EINVAL);
  EXPECT_EQ(build(good, 1, unsorted, 2, capacity), -EINVAL);
  EXPECT_EQ(build(good, 1, empty_range, 1, capacity), -EINVAL);
  EXPECT_EQ(build(good, 1, nullptr, 0, 10), -ENOSPC);
  EXPECT_GT(build(good, 1, nullptr, 0, capacity), 0);
}

TEST(MemoryShimFilter, FullRangeListFitsAndTheKernelAcceptsIt) {
  std::vector<AddressRange> ranges;
  for (int i = 0; i < kMaxShimRanges; ++i) {
    ranges.push_back({0x100000ULL * (i + 1), 0x100000ULL * (i + 1) + 0x8000});
  }
  std::vector<AddressRange> code;
  for (int i = 0; i < kMaxShimCodeRanges; ++i) {
    code.push_back(
        {0x7f0000000000ULL + 0x100000ULL * i, 0x7f0000000000ULL + 0x100000ULL * i + 0x1000});
  }
  code[0] = {0x400000, 0x401001};
  const auto prog = Build(ranges, code);
  ASSERT_LE(prog.size(), static_cast<size_t>(kMaxShimFilterLength));
  // Every jump lands inside the program (the interpreter checks as the kernel does), and the
  // kernel takes it.
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x100000, 0x1000, MADV_DONTNEED,
                 0x7f0000000000ULL + 0x100000ULL * (kMaxShimCodeRanges - 1)),
            kTrap);
  const pid_t pid = fork();
  if (pid == 0) {
    sock_fprog fprog{static_cast<unsigned short>(prog.size()),
                     const_cast<sock_filter*>(prog.data())};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    _exit(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x100000ULL * kMaxShimRanges, 0x1000, MADV_DONTNEED), kTrap);
  EXPECT_EQ(Eval(prog, SYS_madvise, 0x100000ULL * kMaxShimRanges + 0x8000, 0x1000, MADV_DONTNEED),
            kAllow);
}

TEST(MemoryShimRanges, JoinsTouchingRangesAndMergesTheSmallestGapWhenFull) {
  AddressRange ranges[kMaxShimRanges];
  int count = 0;
  AddMergedRange(ranges, &count, 0x1000, 0x2000);
  AddMergedRange(ranges, &count, 0x2000, 0x3000);
  ASSERT_EQ(count, 1);
  EXPECT_EQ(ranges[0].end, 0x3000u);
  // Fill up with gaps of 0x10000, except one gap of 0x1000 after the 11th range.
  uint64_t next = 0x100000;
  while (count < kMaxShimRanges) {
    AddMergedRange(ranges, &count, next, next + 0x1000);
    next += count == 11 ? 0x2000 : 0x11000;
  }
  const AddressRange eleventh = ranges[10];
  AddMergedRange(ranges, &count, next, next + 0x1000);
  ASSERT_EQ(count, kMaxShimRanges);
  EXPECT_EQ(ranges[10].start, eleventh.start);
  EXPECT_EQ(ranges[10].end, eleventh.end + 0x2000);
  EXPECT_EQ(ranges[kMaxShimRanges - 1].start, next);
  for (int i = 1; i < count; ++i) EXPECT_LT(ranges[i - 1].end, ranges[i].start);
  // A new range closer to the last one than any other gap is joined to it.
  AddMergedRange(ranges, &count, next + 0x1000 + 0x100, next + 0x3000);
  EXPECT_EQ(ranges[kMaxShimRanges - 1].end, next + 0x3000);
  // A smaller capacity.
  AddressRange small[2];
  int small_count = 0;
  AddMergedRange(small, &small_count, 2, 0x1000, 0x2000);
  AddMergedRange(small, &small_count, 2, 0x10000, 0x11000);
  AddMergedRange(small, &small_count, 2, 0x12000, 0x13000);
  ASSERT_EQ(small_count, 2);
  EXPECT_EQ(small[0].end, 0x2000u);
  EXPECT_EQ(small[1].start, 0x10000u);
  EXPECT_EQ(small[1].end, 0x13000u);
}

TEST(MemoryShimMaps, ParsesTheFieldsBeforeThePath) {
  const std::string line =
      "7fa600c28000-7fa600d7e000 r-xp 00026000 fe:0a 332835                     "
      "/usr/lib/x86_64-linux-gnu/libc.so.6";
  VmaRecord vma{};
  ASSERT_TRUE(ParseMapsLine(line.data(), line.size(), &vma));
  EXPECT_EQ(vma.start, 0x7fa600c28000u);
  EXPECT_EQ(vma.end, 0x7fa600d7e000u);
  EXPECT_EQ(vma.prot, PROT_READ | PROT_EXEC);
  EXPECT_FALSE(vma.shared);
  EXPECT_EQ(vma.dev_major, 0xfeu);
  EXPECT_EQ(vma.dev_minor, 0x0au);
  EXPECT_EQ(vma.inode, 332835u);
  EXPECT_FALSE(vma.anonymous);
  const std::string heap = "55ec1d660000-55ec1d681000 rw-p 00000000 00:00 0      [heap]";
  ASSERT_TRUE(ParseMapsLine(heap.data(), heap.size(), &vma));
  EXPECT_FALSE(vma.anonymous);
  const std::string anon = "7fa600bff000-7fa600c02000 rw-s 00000000 00:00 0 ";
  ASSERT_TRUE(ParseMapsLine(anon.data(), anon.size(), &vma));
  EXPECT_EQ(vma.prot, PROT_READ | PROT_WRITE);
  EXPECT_TRUE(vma.shared);
  EXPECT_EQ(vma.inode, 0u);
  EXPECT_TRUE(vma.anonymous);
  for (const std::string bad : {"", "7fa6-", "zz-10 rw-p 0 0:0 0", "10-20 rw-p 0 0:0 x",
                                "20-10 rw-p 0 00:00 0", "10-20 rw-p 0 0000 0"}) {
    EXPECT_FALSE(ParseMapsLine(bad.data(), bad.size(), &vma)) << bad;
  }
}

TEST(MemoryShimMaps, DevNumbersFromStatMatchTheMapsColumns) {
  // makedev(0x123, 0x45678) in the kernel's new_encode_dev layout.
  const uint64_t dev = (0x45678ULL & 0xff) | (0x123ULL << 8) | ((0x45678ULL & ~0xffULL) << 12);
  EXPECT_EQ(DevMajor(dev), 0x123u);
  EXPECT_EQ(DevMinor(dev), 0x45678u);
}

TEST(MemoryShimMaps, ReaderSurvivesLinesLongerThanItsBuffer) {
  char path[] = "/tmp/ember-maps-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::string text;
  text += "1000-2000 r--p 00000000 08:01 11 /short\n";
  text += "2000-3000 rw-p 00000000 08:01 12 /" + std::string(5000, 'x') + "\n";
  text += "not a maps line\n";
  for (int i = 0; i < 100; ++i) {
    text += "10000-20000 rw-p 00000000 00:00 0 " + std::string(i * 7, ' ') + "\n";
  }
  text += "30000-40000 ---p 00000000 08:02 13";  // no newline at the end
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  MapsReader reader(fd);
  std::vector<VmaRecord> records;
  VmaRecord vma{};
  while (reader.Next(&vma)) records.push_back(vma);
  close(fd);
  EXPECT_EQ(reader.error, 0);
  ASSERT_EQ(records.size(), 103u);
  EXPECT_EQ(records[0].inode, 11u);
  EXPECT_EQ(records[1].inode, 12u);
  EXPECT_EQ(records[1].start, 0x2000u);
  EXPECT_EQ(records[2].start, 0x10000u);
  EXPECT_EQ(records[102].inode, 13u);
  EXPECT_EQ(records[102].prot, 0);
  EXPECT_EQ(records[102].dev_minor, 2u);
}

std::vector<VmaRecord> WalkOwnMaps(bool text_only, uint64_t begin, uint64_t end) {
  SetMapsTextOnlyForTesting(text_only);
  std::vector<VmaRecord> records;
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  RangeWalker walker(fd, begin, end, true);
  VmaRecord vma{};
  while (walker.Next(&vma)) records.push_back(vma);
  EXPECT_EQ(walker.error, 0);
  close(fd);
  SetMapsTextOnlyForTesting(false);
  return records;
}

TEST(MemoryShimMaps, QueryAndTextAgreeOnThisProcess) {
  // A few kinds of mapping: anonymous, named ones ([heap], [stack]), private and shared files.
  char path[] = "/tmp/ember-walk-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  void* priv = mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* anon = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(priv, MAP_FAILED);
  ASSERT_NE(shared, MAP_FAILED);
  ASSERT_NE(anon, MAP_FAILED);
  // Up to the end of user space: the text also lists [vsyscall], which is no mapping of the
  // process (the query does not find it; nothing ever maps the image there).
  constexpr uint64_t kUserEnd = 0x800000000000;
  const auto text = WalkOwnMaps(true, 0, kUserEnd);
  const auto query = WalkOwnMaps(false, 0, kUserEnd);
  ASSERT_EQ(text.size(), query.size());
  ASSERT_GT(text.size(), 5u);
  for (size_t i = 0; i < text.size(); ++i) {
    EXPECT_EQ(text[i].start, query[i].start) << i;
    EXPECT_EQ(text[i].end, query[i].end) << i;
    EXPECT_EQ(text[i].prot, query[i].prot) << i;
    EXPECT_EQ(text[i].shared, query[i].shared) << i;
    EXPECT_EQ(text[i].dev_major, query[i].dev_major) << i;
    EXPECT_EQ(text[i].dev_minor, query[i].dev_minor) << i;
    EXPECT_EQ(text[i].inode, query[i].inode) << i;
    EXPECT_EQ(text[i].anonymous, query[i].anonymous) << std::hex << text[i].start;
  }
  // A range in the middle of a mapping starts with that mapping, both ways.
  const auto a = reinterpret_cast<uint64_t>(priv);
  const auto n = reinterpret_cast<uint64_t>(anon);
  for (bool text_only : {true, false}) {
    const auto part = WalkOwnMaps(text_only, a + 4096, a + 8192);
    ASSERT_EQ(part.size(), 1u) << text_only;
    EXPECT_EQ(part[0].start, a);
    EXPECT_EQ(part[0].prot, PROT_READ);
    EXPECT_FALSE(part[0].anonymous);
    const auto none = WalkOwnMaps(text_only, n, n + 4096);
    ASSERT_EQ(none.size(), 1u) << text_only;
    EXPECT_TRUE(none[0].anonymous);
    EXPECT_EQ(none[0].prot, 0);
  }
  munmap(priv, 8192);
  munmap(shared, 4096);
  munmap(anon, 4096);
  close(fd);
}

TEST(MemoryShimMaps, FindsImagePiecesInAMapsFileThroughTheTextFallback) {
  // A regular file refuses PROCMAP_QUERY (ENOTTY): the walker reads it as text.
  char path[] = "/tmp/ember-maps-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text =
      "10000-20000 rw-p 00000000 08:01 77 /image\n"
      "20000-30000 rw-p 00000000 00:00 0 \n"
      "30000-38000 r--p 00010000 08:01 77 /image\n"
      "38000-40000 rw-s 00018000 08:01 77 /image\n"
      "40000-50000 rw-p 00000000 08:01 78 /other\n"
      "50000-60000 rw-p 00020000 08:01 77 /image\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  ImagePiece pieces[4];
  ASSERT_EQ(FindImagePieces(path, 8, 1, 77, 0x18000, 0x58000, pieces, 4), 3);
  EXPECT_EQ(pieces[0].start, 0x18000u);
  EXPECT_EQ(pieces[0].end, 0x20000u);
  EXPECT_EQ(pieces[1].start, 0x30000u);
  EXPECT_EQ(pieces[1].prot, PROT_READ);
  EXPECT_EQ(pieces[2].end, 0x58000u);
  ASSERT_EQ(FindImagePieces(path, 8, 1, 77, 0x18000, 0x58000, pieces, 1), 1);
  RangeSummary summary{};
  ASSERT_EQ(SummarizeRange(path, 8, 1, 77, 0x10000, 0x30000, &summary), 0);
  EXPECT_TRUE(summary.has_image && summary.one_anonymous_run);
  ASSERT_EQ(SummarizeRange(path, 8, 1, 77, 0x10000, 0x38000, &summary), 0);
  EXPECT_FALSE(summary.one_anonymous_run);  // r--p after rw-p
  ASSERT_EQ(SummarizeRange(path, 8, 1, 77, 0x50000, 0x70000, &summary), 0);
  EXPECT_FALSE(summary.one_anonymous_run);  // a hole after 0x60000
  ASSERT_EQ(SummarizeRange(path, 8, 1, 77, 0x20000, 0x30000, &summary), 0);
  EXPECT_FALSE(summary.has_image);
  EXPECT_EQ(FindImagePieces("/nonexistent/maps", 8, 1, 77, 0, 1, pieces, 4), -ENOENT);
  unlink(path);
}

}  // namespace
}  // namespace ember::restorer
