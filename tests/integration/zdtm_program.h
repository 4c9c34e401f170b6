// The harness of the checkpoint tests: runs one of the zdtm-style programs of tests/zdtm (fd 0
// a socket the test names as the control channel, fds 1 and 2 a pipe to the test), reads its
// "ready key=value ..." line once it is blocked in read(), and wakes it for its verdict.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "snapshot/checkpoint.h"
#include "util/fixtures.h"

namespace ember::snapshot::zdtm {

class Program {
 public:
  // `chroot_dir`: run the program chroot'ed there (argv[0] is then a path inside it).
  void Start(const std::vector<std::string>& argv, const std::string& chroot_dir = "") {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(sv[1], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      // Only what the test sets up: an fd inherited from whoever ran the test would be refused.
      ::syscall(SYS_close_range, 3, ~0U, 0);
      if (!chroot_dir.empty() && (::chroot(chroot_dir.c_str()) != 0 || ::chdir("/") != 0)) {
        ::_exit(126);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(sv[1]);
    ::close(out[1]);
    control_.reset(sv[0]);
    out_.reset(out[0]);
    auto child = ChildProcess::Adopt(pid);
    ASSERT_TRUE(child) << child.error().ToString();
    child_ = std::move(*child);
    std::string line = ReadLine();
    ASSERT_TRUE(line.starts_with("ready")) << argv[0] << " said: " << line;
    ASSERT_NO_FATAL_FAILURE(WaitUntilBlockedInRead());
    std::istringstream words(line.substr(5));
    std::string word;
    while (words >> word) {
      size_t eq = word.find('=');
      if (eq != std::string::npos) ready_[word.substr(0, eq)] = word.substr(eq + 1);
    }
  }

  pid_t pid() const { return child_.pid(); }
  std::string Get(const std::string& key) const {
    auto it = ready_.find(key);
    return it == ready_.end() ? "" : it->second;
  }
  uint64_t Num(const std::string& key) const {
    return std::strtoull(Get(key).c_str(), nullptr, 0);  // "0x..." or decimal
  }

  // Wakes the program; returns its verdict line ("ok" or "fail ...") and reaps it.
  std::string Finish() {
    char byte = 'x';
    if (::write(control_.get(), &byte, 1) != 1) return "write failed";
    std::string verdict = ReadLine();
    auto status = child_.Wait();
    if (!status) return "wait failed";
    return verdict;
  }

 private:
  // "ready" is printed just before the read(); checkpointing in between would catch the end of
  // the write instead. /proc/PID/syscall shows the syscall the main thread is blocked in.
  void WaitUntilBlockedInRead() {
    std::string path = "/proc/" + std::to_string(pid()) + "/syscall";
    for (int i = 0; i < 5000; ++i) {
      auto text = ReadFile(path);
      ASSERT_TRUE(text) << text.error().ToString();
      if (text->starts_with("0 ")) return;
      ::usleep(1000);
    }
    FAIL() << "the program never blocked in read()";
  }

  std::string ReadLine() {
    std::string line;
    char c;
    while (::read(out_.get(), &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

  ChildProcess child_;
  UniqueFd control_, out_;
  std::map<std::string, std::string> ready_;
};

inline std::string Zdtm(const std::string& name) {
  return ::ember::testing::TestBinDir() + "/zdtm_" + name;
}

inline const MemoryArea* AreaAt(const ProcessState& state, uint64_t addr) {
  for (const MemoryArea& a : state.areas) {
    if (a.start <= addr && addr < a.end) return &a;
  }
  return nullptr;
}

// The stored bytes of the page holding `addr`, or nullptr if that page is not stored.
inline const uint8_t* StoredPage(const MemoryArea& area, uint64_t addr) {
  uint32_t index = static_cast<uint32_t>((addr - area.start) / kPageSize);
  auto it = std::lower_bound(area.pages.begin(), area.pages.end(), index);
  if (it == area.pages.end() || *it != index) return nullptr;
  return area.page_data.data() + (it - area.pages.begin()) * kPageSize;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (ptrace of any process, map_files)";
  }

  Result<ProcessState> Capture(Program& program, CheckpointOptions options = {}) {
    if (options.control_fd < 0) options.control_fd = 0;
    return Checkpoint(program.pid(), options);
  }
};

// Every capture: the leader first and inside its read() on the control socket, rewound so that
// restore re-issues it; rip - the rewound rip - points at a syscall instruction.
inline void ExpectBlockedInRead(const ProcessState& state, pid_t pid) {
  ASSERT_FALSE(state.threads.empty());
  const ThreadState& leader = state.threads[0];
  EXPECT_EQ(leader.tid, pid);
  EXPECT_TRUE(leader.restart_syscall);
  EXPECT_EQ(leader.regs.rax, static_cast<uint64_t>(SYS_read));
  EXPECT_EQ(leader.regs.orig_rax, static_cast<uint64_t>(SYS_read));
  auto mem = OpenFile("/proc/" + std::to_string(pid) + "/mem", O_RDONLY);
  ASSERT_TRUE(mem) << mem.error().ToString();
  uint8_t insn[2] = {};
  ASSERT_EQ(::pread(mem->get(), insn, 2, static_cast<off_t>(leader.regs.rip)), 2);
  EXPECT_EQ(insn[0], 0x0f);
  EXPECT_EQ(insn[1], 0x05);
}

}  // namespace ember::snapshot::zdtm
