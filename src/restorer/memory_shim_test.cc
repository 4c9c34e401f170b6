// The memory shim in a live process. A seccomp filter cannot be removed, so each case runs in a
// forked child: it maps a temp file of pattern pages MAP_PRIVATE (as the restorer maps the
// image), installs the shim for that file, checks, and reports failures through a pipe.
#include "restorer/memory_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "restorer/memory_shim_filter.h"
#include "restorer/memory_shim_maps.h"
#include "sandbox/seccomp.h"

namespace ember::restorer {
namespace {

// The handler reads registers at the kernel's offsets; glibc's ucontext_t must agree.
static_assert(offsetof(ucontext_t, uc_mcontext) == 40);
static_assert(REG_RAX == 13 && REG_RDI == 8 && REG_RSI == 9 && REG_RDX == 12 && REG_R10 == 2);

const size_t kPage = 4096;

uint64_t Pattern(size_t page, size_t word) { return 0xa5a5000000000000ULL | (page << 16) | word; }

// A temp file of `pages` pattern pages, unlinked; its fd stays open.
struct PatternFile {
  int fd = -1;
  struct stat st {};
  explicit PatternFile(size_t pages, uint64_t salt = 0) {
    char path[] = "/tmp/ember-shim-XXXXXX";
    fd = mkstemp(path);
    unlink(path);
    std::string data(pages * kPage, '\0');
    for (size_t p = 0; p < pages; ++p) {
      for (size_t w = 0; w < kPage / 8; ++w) {
        const uint64_t v = Pattern(p, w) ^ salt;
        std::memcpy(&data[p * kPage + w * 8], &v, 8);
      }
    }
    if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) fd = -1;
    fstat(fd, &st);
  }
  ~PatternFile() {
    if (fd >= 0) close(fd);
  }
  char* Map(size_t pages, int prot = PROT_READ | PROT_WRITE, void* at = nullptr) const {
    void* p = mmap(at, pages * kPage, prot, MAP_PRIVATE | (at ? MAP_FIXED : 0), fd, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  MemoryShimConfig Config() const {
    return MemoryShimConfig{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  }
};

// Collects failures inside the child.
struct Checks {
  std::ostringstream out;
  void Expect(bool ok, int line, const std::string& what) {
    if (!ok) out << "line " << line << ": " << what << "\n";
  }
};
#define CHECK_IN_CHILD(c, cond) (c).Expect((cond), __LINE__, #cond)

bool PageIs(const char* page, size_t page_index, uint64_t salt = 0) {
  for (size_t w = 0; w < kPage / 8; ++w) {
    uint64_t v;
    std::memcpy(&v, page + w * 8, 8);
    if (v != (Pattern(page_index, w) ^ salt)) return false;
  }
  return true;
}

bool PageIsZero(const char* page) {
  for (size_t i = 0; i < kPage; ++i) {
    if (page[i] != 0) return false;
  }
  return true;
}

struct ChildResult {
  int status = 0;
  std::string failures;
};

// Runs `body` in a forked child; its failures come back through a pipe.
ChildResult RunInChild(const std::function<void(Checks&)>& body) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return {-1, "pipe failed"};
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    Checks checks;
    body(checks);
    const std::string text = checks.out.str();
    if (!text.empty() && write(pipe_fds[1], text.data(), text.size()) < 0) _exit(3);
    _exit(text.empty() ? 0 : 1);
  }
  close(pipe_fds[1]);
  ChildResult result;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) result.failures.append(buf, n);
  close(pipe_fds[0]);
  waitpid(pid, &result.status, 0);
  return result;
}

void ExpectCleanExit(const ChildResult& result) {
  EXPECT_EQ(result.failures, "");
  EXPECT_TRUE(WIFEXITED(result.status) && WEXITSTATUS(result.status) == 0)
      << "child status " << result.status;
}

int Install(const PatternFile& file) {
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return InstallMemoryShim(file.Config());
}

// The permission column /proc/self/maps shows for the mapping holding `address`.
std::string PermissionsAt(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(address);
  while (std::getline(maps, line)) {
    uintptr_t start = 0, end = 0;
    char perms[5] = {};
    if (sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) == 3 && a >= start && a < end) {
      return perms;
    }
  }
  return "";
}

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

TEST(MemoryShim, ProgramsTheProcessExecutesAreNotTrapped) {
  // The filter outlives execve, the handler does not: a trap would kill the new program.
  // Python queries every signal's action at startup and here also sets SIGSYS's; its malloc
  // trims with madvise.
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0) GTEST_SKIP() << "no " << python;
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    const pid_t pid = fork();
    if (pid == 0) {
      execl(python, python, "-c",
            "import signal, mmap\n"
            "signal.signal(signal.SIGSYS, signal.SIG_IGN)\n"
            "m = mmap.mmap(-1, 1 << 20)\n"
            "m.madvise(mmap.MADV_DONTNEED)\n"
            "m.resize(2 << 20)\n",
            nullptr);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    c.Expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, __LINE__,
             "python exited with status " + std::to_string(status));
  }));
}

TEST(MemoryShim, WorksUnderTheSandboxsStrictPolicy) {
  // The restorer installs the shim, then each thread the sandbox's allowlist. That list does
  // not allow PROCMAP_QUERY (ioctl requests are listed one by one): the text serves instead.
  auto strict = sandbox::CompileSeccomp(sandbox::SeccompPolicy::kStrict);
  ASSERT_TRUE(strict.has_value()) << strict.error().ToString();
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = static_cast<char*>(
        mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    CHECK_IN_CHILD(c, file.Map(4, PROT_READ | PROT_WRITE, p + 2 * kPage) == p + 2 * kPage);
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, sandbox::InstallSeccomp(*strict) == 0);
    CHECK_IN_CHILD(c, madvise(p + 3 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + 3 * kPage) && PageIs(p + 4 * kPage, 2));
    void* q = mremap(p, 8 * kPage, 12 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g + 2 * kPage, 0) && PageIsZero(g + 3 * kPage));
    CHECK_IN_CHILD(c, PageIs(g + 5 * kPage, 3) && PageIsZero(g + 11 * kPage));
  }));
}

TEST(MemoryShim, InstallRefusesAWrongImageAndASecondInstall) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    MemoryShimConfig wrong = file.Config();
    wrong.image_ino += 1;
    CHECK_IN_CHILD(c, InstallMemoryShim(wrong) == -ENOENT);
    CHECK_IN_CHILD(c, InstallMemoryShim(file.Config()) == 0);
    CHECK_IN_CHILD(c, InstallMemoryShim(file.Config()) == -EBUSY);
  }));
}

// A second filter that traps getppid, as the process's own seccomp use would.
bool TrapGetppid(uint32_t data) {
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP | data),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog fprog{sizeof(program) / sizeof(program[0]), program};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0;
}

TEST(MemoryShim, ForeignSigsysWithoutAHandlerKillsAsBefore) {
  PatternFile file(4);
  const ChildResult result = RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(7));
    syscall(SYS_getppid);
    c.Expect(false, __LINE__, "survived a foreign seccomp trap");
  });
  EXPECT_TRUE(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSYS)
      << result.status << " " << result.failures;
}

int g_foreign_errno = -1;
void ForeignHandler(int, siginfo_t* info, void* context) {
  g_foreign_errno = info->si_errno;
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = 1234;
}

TEST(MemoryShim, ForeignSigsysGoesToTheProcessHandler) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    struct sigaction action {};
    action.sa_sigaction = ForeignHandler;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &action, nullptr);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(7));
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 1234);
    CHECK_IN_CHILD(c, g_foreign_errno == 7);
    // The shim still works after forwarding.
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
  }));
}

TEST(MemoryShim, SentSigsysIsIgnoredWhenTheProcessIgnoredIt) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    signal(SIGSYS, SIG_IGN);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    CHECK_IN_CHILD(c, raise(SIGSYS) == 0);
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
  }));
}

int g_madvise_in_handler = -2;
char* g_handler_page = nullptr;
void HandlerThatFreesMemory(int, siginfo_t*, void* context) {
  g_madvise_in_handler = madvise(g_handler_page, kPage, MADV_DONTNEED);
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = 0;
}

TEST(MemoryShim, ProcessSigactionOfSigsysIsKeptBesideTheShim) {
  PatternFile file(4);
  const ChildResult result = RunInChild([&](Checks& c) {
    signal(SIGSYS, SIG_IGN);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(9));
    if (p == nullptr) return;
    // The process sees its own action, not the shim's.
    struct sigaction seen {};
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &seen) == 0 && seen.sa_handler == SIG_IGN);
    struct sigaction action {};
    action.sa_sigaction = ForeignHandler;
    action.sa_flags = SA_SIGINFO;
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &action, nullptr) == 0);
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &seen) == 0 &&
                          seen.sa_sigaction == ForeignHandler && (seen.sa_flags & SA_SIGINFO));
    // The shim still serves madvise; the process's handler gets the foreign trap.
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 1234 && g_foreign_errno == 9);
    // A handler that frees memory while handling SIGSYS reaches the shim too.
    g_handler_page = p + kPage;
    action.sa_sigaction = HandlerThatFreesMemory;
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &action, nullptr) == 0);
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 0);
    CHECK_IN_CHILD(c, g_madvise_in_handler == 0 && PageIsZero(p + kPage));
    // A wrong sigset size and a bad oact are refused like the kernel refuses them.
    CHECK_IN_CHILD(c,
                   syscall(SYS_rt_sigaction, SIGSYS, nullptr, &seen, 16) == -1 && errno == EINVAL);
    CHECK_IN_CHILD(c, syscall(SYS_rt_sigaction, SIGSYS, nullptr, 8, 8) == -1 && errno == EFAULT);
    // Back to the default: a foreign trap kills again.
    signal(SIGSYS, SIG_DFL);
    CHECK_IN_CHILD(c, madvise(p + 2 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + 2 * kPage));
    const std::string text = c.out.str();
    if (!text.empty()) return;  // report the failures instead of dying below
    syscall(SYS_getppid);
    c.Expect(false, __LINE__, "survived a foreign seccomp trap with SIG_DFL");
  });
  EXPECT_TRUE(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSYS)
      << result.status << " " << result.failures;
}

}  // namespace
}  // namespace ember::restorer
