// Helpers for the memory shim's live tests (memory_shim_test.cc, memory_shim_process_test.cc).
// A seccomp filter cannot be removed, so each case runs in a forked child: it maps a temp file of
// pattern pages MAP_PRIVATE (as the restorer maps the image), installs the shim for that file,
// checks, and reports failures through a pipe.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "restorer/memory_shim.h"

namespace ember::restorer::shim_test {

// The handler reads registers at the kernel's offsets; glibc's ucontext_t must agree.
static_assert(offsetof(ucontext_t, uc_mcontext) == 40);
static_assert(REG_RAX == 13 && REG_RDI == 8 && REG_RSI == 9 && REG_RDX == 12 && REG_R10 == 2);

inline constexpr size_t kPage = 4096;

inline uint64_t Pattern(size_t page, size_t word) {
  return 0xa5a5000000000000ULL | (page << 16) | word;
}

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

inline bool PageIs(const char* page, size_t page_index, uint64_t salt = 0) {
  for (size_t w = 0; w < kPage / 8; ++w) {
    uint64_t v;
    std::memcpy(&v, page + w * 8, 8);
    if (v != (Pattern(page_index, w) ^ salt)) return false;
  }
  return true;
}

inline bool PageIsZero(const char* page) {
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
inline ChildResult RunInChild(const std::function<void(Checks&)>& body) {
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

inline void ExpectCleanExit(const ChildResult& result) {
  EXPECT_EQ(result.failures, "");
  EXPECT_TRUE(WIFEXITED(result.status) && WEXITSTATUS(result.status) == 0)
      << "child status " << result.status;
}

inline int Install(const PatternFile& file) {
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return InstallMemoryShim(file.Config());
}

// The permission column /proc/self/maps shows for the mapping holding `address`.
inline std::string PermissionsAt(const void* address) {
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
}  // namespace ember::restorer::shim_test
