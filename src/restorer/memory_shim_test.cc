// The memory shim in a live process: madvise and mremap over image-backed memory behave as on
// anonymous memory, other memory and other advice are left alone. Helpers and the forked-child
// scheme: memory_shim_test_support.h.
#include "restorer/memory_shim.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "restorer/memory_shim_maps.h"
#include "restorer/memory_shim_test_support.h"

namespace ember::restorer::shim_test {
namespace {

TEST(MemoryShim, WithoutTheShimDontneedShowsTheImageAgain) {
  // The kernel behaviour the shim exists for; if this changes the shim is moot.
  PatternFile file(4);
  char* p = file.Map(4);
  ASSERT_NE(p, nullptr);
  std::memset(p + kPage, 0, kPage);
  ASSERT_EQ(madvise(p, 4 * kPage, MADV_DONTNEED), 0);
  EXPECT_TRUE(PageIs(p + kPage, 1));
  EXPECT_EQ(madvise(p, kPage, MADV_FREE), -1);
  munmap(p, 4 * kPage);
}

TEST(MemoryShim, DontneedZeroesOnlyTheAdvisedImagePages) {
  PatternFile file(8);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(8);
    CHECK_IN_CHILD(c, p != nullptr);
    if (p == nullptr) return;
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, madvise(p + 2 * kPage, 2 * kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 1);
    for (size_t i = 0; i < 8; ++i) {
      const bool zeroed = i == 2 || i == 3;
      c.Expect(zeroed ? PageIsZero(p + i * kPage) : PageIs(p + i * kPage, i), __LINE__,
               "page " + std::to_string(i));
    }
    // Still writable, still private.
    p[2 * kPage] = 7;
    CHECK_IN_CHILD(c, p[2 * kPage] == 7);
    CHECK_IN_CHILD(c, PermissionsAt(p + 2 * kPage) == "rw-p");
  }));
}

TEST(MemoryShim, WrittenPagesThenDontneedGiveZeros) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    std::memset(p + kPage, 0x5c, kPage);  // copy-on-write page
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_DONTNEED) == 0);
    for (size_t i = 0; i < 4; ++i) {
      c.Expect(PageIsZero(p + i * kPage), __LINE__, "page " + std::to_string(i));
    }
  }));
}

TEST(MemoryShim, ReadOnlyImageKeepsItsProtection) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4, PROT_READ);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    CHECK_IN_CHILD(c, madvise(p + kPage, kPage, MADV_DONTNEED_LOCKED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + kPage));
    CHECK_IN_CHILD(c, PageIs(p, 0));
    CHECK_IN_CHILD(c, PermissionsAt(p + kPage) == "r--p");
  }));
}

TEST(MemoryShim, GuardPagesLeaveZerosWhenRemoved) {
  constexpr int kGuardInstall = 102, kGuardRemove = 103;  // Linux 6.13
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    const int installed = madvise(p + kPage, kPage, kGuardInstall);
    if (installed != 0 && errno == EINVAL) return;  // a kernel without guard regions
    CHECK_IN_CHILD(c, installed == 0);
    CHECK_IN_CHILD(c, madvise(p + kPage, kPage, kGuardRemove) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + kPage) && PageIs(p, 0) && PageIs(p + 2 * kPage, 2));
  }));
}

TEST(MemoryShim, MadvFreeWorksAndLeavesZerosOrTheOldBytes) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    std::memset(p, 0x33, kPage);
    CHECK_IN_CHILD(c, madvise(p, 2 * kPage, MADV_FREE) == 0);
    CHECK_IN_CHILD(c, p[0] == 0 || p[0] == 0x33);
    CHECK_IN_CHILD(c, p[kPage] == 0);  // never written: was image bytes, now anonymous
    CHECK_IN_CHILD(c, PageIs(p + 2 * kPage, 2));
    p[0] = 1;
    CHECK_IN_CHILD(c, p[0] == 1);
  }));
}

TEST(MemoryShim, DontneedAcrossImageAndAnonymousMemory) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = static_cast<char*>(
        mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED && file.Map(4, PROT_READ | PROT_WRITE, p) == p);
    std::memset(p + 4 * kPage, 0x77, 4 * kPage);
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, madvise(p + kPage, 6 * kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIs(p, 0));
    for (size_t i = 1; i < 7; ++i) {
      c.Expect(PageIsZero(p + i * kPage), __LINE__, "page " + std::to_string(i));
    }
    CHECK_IN_CHILD(c, p[7 * kPage] == 0x77);
  }));
}

TEST(MemoryShim, MremapGrowWithMaymoveKeepsBytesAndAddsZeros) {
  PatternFile file(4);  // exactly 4 pages: a file mapping grown past them would SIGBUS
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    p[kPage] = 0x42;
    void* q = mremap(p, 4 * kPage, 16 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g, 0) && PageIs(g + 2 * kPage, 2) && PageIs(g + 3 * kPage, 3));
    CHECK_IN_CHILD(c, g[kPage] == 0x42);
    for (size_t i = 4; i < 16; ++i) {
      c.Expect(PageIsZero(g + i * kPage), __LINE__, "page " + std::to_string(i));
    }
    g[15 * kPage] = 1;
    CHECK_IN_CHILD(c, PermissionsAt(g + 15 * kPage) == "rw-p");
    // Anonymous now: DONTNEED needs no trap any more and still zeroes.
    const uint64_t traps = MemoryShimTrapCount();
    CHECK_IN_CHILD(c, madvise(g, kPage, MADV_DONTNEED) == 0 && PageIsZero(g));
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == traps + (g == p ? 1 : 0));
  }));
}

TEST(MemoryShim, MremapAfterDontneedInTheMiddleSeesOneMapping) {
  // The DONTNEED conversion splits the image mapping in three; anonymous memory would still be
  // one mapping, which mremap requires.
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    char* h = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && h != nullptr && Install(file) == 0);
    if (p == nullptr || h == nullptr) return;
    CHECK_IN_CHILD(c, madvise(p + kPage, kPage, MADV_DONTNEED) == 0);
    p[2 * kPage] = 0x42;
    void* q = mremap(p, 4 * kPage, 8 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g, 0) && PageIsZero(g + kPage) && PageIs(g + 3 * kPage, 3));
    CHECK_IN_CHILD(c, g[2 * kPage] == 0x42 && PageIsZero(g + 7 * kPage));
    // Mixed protections stay refused, as for anonymous memory.
    CHECK_IN_CHILD(c, mprotect(h, kPage, PROT_READ) == 0);
    const uint64_t traps = MemoryShimTrapCount();
    errno = 0;
    CHECK_IN_CHILD(c, mremap(h, 4 * kPage, 8 * kPage, MREMAP_MAYMOVE) == MAP_FAILED);
    CHECK_IN_CHILD(c, errno == EFAULT && MemoryShimTrapCount() == traps + 1);
    CHECK_IN_CHILD(c, PageIs(h, 0) && PageIs(h + 3 * kPage, 3));
  }));
}

TEST(MemoryShim, MremapOfAnAreaWithOverlaidRunsAsTheRestorerMapsIt) {
  // The restorer maps an anonymous area, then each stored run of it from the image on top:
  // anonymous | image | anonymous | image. At checkpoint that was one mapping.
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = static_cast<char*>(
        mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    void* run1 =
        mmap(p + kPage, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file.fd, 0);
    void* run2 = mmap(p + 6 * kPage, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                      file.fd, 3 * kPage);
    CHECK_IN_CHILD(c, run1 == p + kPage && run2 == p + 6 * kPage && Install(file) == 0);
    p[4 * kPage] = 0x61;
    void* q = mremap(p, 8 * kPage, 32 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIsZero(g) && PageIs(g + kPage, 0) && PageIs(g + 2 * kPage, 1));
    CHECK_IN_CHILD(c, g[4 * kPage] == 0x61 && PageIs(g + 6 * kPage, 3));
    CHECK_IN_CHILD(c, PageIsZero(g + 7 * kPage) && PageIsZero(g + 31 * kPage));
  }));
}

TEST(MemoryShim, MremapGrowInPlaceAddsZerosNotSigbus) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p =
        static_cast<char*>(mmap(nullptr, 8 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED && file.Map(4, PROT_READ | PROT_WRITE, p) == p);
    munmap(p + 4 * kPage, 4 * kPage);
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, mremap(p, 4 * kPage, 8 * kPage, 0) == p);
    CHECK_IN_CHILD(c, PageIs(p + 3 * kPage, 3));
    CHECK_IN_CHILD(c, PageIsZero(p + 4 * kPage) && PageIsZero(p + 7 * kPage));
  }));
}

TEST(MemoryShim, MremapMovesUnreadableImageMemoryIntact) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    CHECK_IN_CHILD(c, mprotect(p, 4 * kPage, PROT_NONE) == 0);
    void* q = mremap(p, 4 * kPage, 6 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    CHECK_IN_CHILD(c, PermissionsAt(q) == "---p");
    CHECK_IN_CHILD(c, mprotect(q, 6 * kPage, PROT_READ) == 0);
    CHECK_IN_CHILD(c, PageIs(static_cast<char*>(q) + 3 * kPage, 3));
    CHECK_IN_CHILD(c, PageIsZero(static_cast<char*>(q) + 5 * kPage));
  }));
}

TEST(MemoryShim, RemoveIsRefusedLikeOnAnonymousMemory) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    p[0] = 9;
    errno = 0;
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_REMOVE) == -1 && errno == EINVAL);
    CHECK_IN_CHILD(c, p[0] == 9 && PageIs(p + kPage, 1));
  }));
}

TEST(MemoryShim, WipeOnForkKeepsContentsHereAndZeroesThemInAChild) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_WIPEONFORK) == 0);
    CHECK_IN_CHILD(c, PageIs(p, 0) && PageIs(p + 3 * kPage, 3));
    const pid_t pid = fork();
    if (pid == 0) _exit(PageIsZero(p) && PageIsZero(p + 3 * kPage) ? 0 : 1);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_IN_CHILD(c, WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }));
}

TEST(MemoryShim, OtherMemoryIsNotTrappedAndBehavesAsBefore) {
  PatternFile image(4);
  PatternFile other(4, /*salt=*/0xff);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = image.Map(4);
    char* o = other.Map(4);
    char* a = static_cast<char*>(
        mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != nullptr && o != nullptr && a != MAP_FAILED && Install(image) == 0);
    if (p == nullptr || o == nullptr || a == MAP_FAILED) return;
    std::memset(o, 0, 2 * kPage);
    std::memset(a, 0x11, 4 * kPage);
    CHECK_IN_CHILD(c, madvise(o, 4 * kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIs(o, 0, 0xff) && PageIs(o + kPage, 1, 0xff));  // the file's bytes
    CHECK_IN_CHILD(c, madvise(a, 4 * kPage, MADV_DONTNEED) == 0 && PageIsZero(a));
    void* g = mremap(a, 4 * kPage, 8 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, g != MAP_FAILED);
    // Advice that means the same on file and anonymous memory is not trapped either.
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_WILLNEED) == 0);
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_COLD) == 0);
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 0);
    CHECK_IN_CHILD(c, PageIs(p, 0));
  }));
}

TEST(MemoryShim, ThreadsCreatedAfterInstallAreCovered) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    int result = -2;
    std::thread t([&] { result = madvise(p, 2 * kPage, MADV_DONTNEED); });
    t.join();
    CHECK_IN_CHILD(c, result == 0 && PageIsZero(p) && PageIsZero(p + kPage));
    CHECK_IN_CHILD(c, PageIs(p + 2 * kPage, 2));
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 1);
  }));
}

TEST(MemoryShim, ThreadsTrappingAtTheSameTime) {
  constexpr size_t kThreads = 4, kRounds = 200;
  PatternFile file(kThreads * 2);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(kThreads * 2);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    int bad[kThreads] = {};
    std::thread threads[kThreads];
    for (size_t t = 0; t < kThreads; ++t) {
      threads[t] = std::thread([&, t] {
        char* mine = p + 2 * t * kPage;  // two pages each; the second stays untouched
        for (size_t round = 0; round < kRounds; ++round) {
          mine[round % kPage] = 1;
          if (madvise(mine, kPage, MADV_DONTNEED) != 0 || !PageIsZero(mine)) ++bad[t];
        }
        if (!PageIs(mine + kPage, 2 * t + 1)) ++bad[t];
      });
    }
    for (auto& thread : threads) thread.join();
    for (size_t t = 0; t < kThreads; ++t) {
      c.Expect(bad[t] == 0, __LINE__, "thread " + std::to_string(t));
    }
    CHECK_IN_CHILD(c, MemoryShimTrapCount() >= kThreads);
  }));
}

TEST(MemoryShim, TheTextFallbackServesTheSameCalls) {
  // As on a kernel without PROCMAP_QUERY (Debian 12's 6.1).
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    SetMapsTextOnlyForTesting(true);
    char* p = static_cast<char*>(
        mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    CHECK_IN_CHILD(c, file.Map(4, PROT_READ | PROT_WRITE, p + kPage) == p + kPage);
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, madvise(p + 2 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + 2 * kPage) && PageIs(p + 3 * kPage, 2));
    void* q = mremap(p, 8 * kPage, 16 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g + kPage, 0) && PageIs(g + 4 * kPage, 3));
    CHECK_IN_CHILD(c, PageIsZero(g + 2 * kPage) && PageIsZero(g + 15 * kPage));
  }));
}

}  // namespace
}  // namespace ember::restorer::shim_test
