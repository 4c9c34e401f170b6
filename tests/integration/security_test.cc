// The sandbox as an attacker sees it: tests/util/security_probe.c runs inside `ember run` and
// tries every escape we know of (mounts, namespaces, ptrace, kernel APIs, foreign syscall ABIs,
// terminal injection, devices); each attempt must fail with the errno listed in
// util/security_expectations.h. Then resource bombs (processes, memory, disk, descriptors, CPU)
// must hit their limit inside the sandbox while the host keeps working.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "util/fixtures.h"
#include "util/security_expectations.h"

namespace ember {
namespace {

using testing::ExpectEveryEscapeRefused;
using testing::RunResult;

class SecurityTest : public testing::BusyboxSandboxTest {};

TEST_F(SecurityTest, EveryEscapeAttemptIsRefused) {
  auto r = Run({"--", "security_probe"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectEveryEscapeRefused(r.out);
}

TEST_F(SecurityTest, ForkBombIsContainedByPidsLimit) {
  RunResult bomb;
  std::thread runner([&] { bomb = Run({"--pids", "64", "--", "security_probe", "forkbomb"}); });
  // While the bomb holds every pid it may have (its children sleep 3 s), the host still forks.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto host = testing::RunCommand({"sh", "-c", "echo alive"});
  runner.join();
  EXPECT_EQ(host.exit_code, 0);
  EXPECT_EQ(host.out, "alive\n");
  ASSERT_EQ(bomb.exit_code, 0) << bomb.err << bomb.out;
  int made = -1;
  char err[32] = {};
  ASSERT_EQ(std::sscanf(bomb.out.c_str(), "forkbomb made=%d errno=%31s", &made, err), 2)
      << bomb.out;
  EXPECT_STREQ(err, "EAGAIN");
  EXPECT_GT(made, 0);
  EXPECT_LT(made, 64);
}

TEST_F(SecurityTest, MemoryBombIsOomKilled) {
  auto r = Run({"--memory", "32M", "--", "security_probe", "memory"});
  EXPECT_EQ(r.exit_code, 137) << r.err << r.out;
  EXPECT_NE(r.err.find("OOM"), std::string::npos) << r.err;
}

TEST_F(SecurityTest, DiskFillHitsEnospcInTheWritableLayer) {
  auto r = Run({"--tmpfs-size", "8M", "--", "security_probe", "disk"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("errno=ENOSPC"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("filled its writable layer"), std::string::npos) << r.err;
}

TEST_F(SecurityTest, FdExhaustionStopsAtTheSandboxLimit) {
  auto r = Run({"--", "security_probe", "fds"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  int opened = -1;
  char err[32] = {};
  ASSERT_EQ(std::sscanf(r.out.c_str(), "fds opened=%d errno=%31s", &opened, err), 2) << r.out;
  EXPECT_STREQ(err, "EMFILE");
  EXPECT_LE(opened, 4096) << "the sandbox's RLIMIT_NOFILE should be far below the host's";
  // The host is unaffected: this process still opens descriptors.
  std::vector<int> fds;
  for (int i = 0; i < 64; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  for (int fd : fds) {
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
  }
}

TEST_F(SecurityTest, CpuSpinIsStoppedByTimeout) {
  auto r = Run({"--timeout", "1s", "--cpus", "0.5", "--", "security_probe", "spin"}, "", 60);
  EXPECT_EQ(r.exit_code, 124) << r.err;
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ember
