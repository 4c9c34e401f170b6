// The sandbox as an attacker sees it: tests/util/security_probe.c runs inside `ember run` and
// tries every escape we know of (mounts, namespaces, ptrace, kernel APIs, foreign syscall ABIs,
// terminal injection, devices); each attempt must fail with the errno listed here. Then resource
// bombs (processes, memory, disk, descriptors, CPU) must hit their limit inside the sandbox while
// the host keeps working.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "util/fixtures.h"

namespace ember {
namespace {

using testing::RunResult;

class SecurityTest : public testing::BusyboxSandboxTest {};

// "NAME errno=ENAME" / "NAME ok" lines into NAME -> "ENAME" / "ok"; "#" lines are notes.
std::map<std::string, std::string> ParseChecks(const std::string& out) {
  std::map<std::string, std::string> checks;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.find(' ');
    std::string result = line.substr(space + 1);
    if (result.rfind("errno=", 0) == 0) result = result.substr(6);
    checks[line.substr(0, space)] = result;
  }
  return checks;
}

const std::set<std::string> kAnyErrno = {"*"};

// What each escape attempt must fail with. Seccomp answers EPERM for refused syscalls and
// ENOSYS for clone3 and foreign ABIs (x32, int 0x80); "ENOENT" on an observation means nothing
// of the host was found.
const std::map<std::string, std::set<std::string>>& Expected() {
  static const std::map<std::string, std::set<std::string>> expected = {
      {"mount_tmpfs", {"EPERM"}},
      {"umount_root", {"EPERM"}},
      {"unshare_user", {"EPERM"}},
      {"unshare_mnt", {"EPERM"}},
      {"clone_newuser", {"EPERM"}},
      {"clone3", {"ENOSYS"}},
      {"setns_mnt", {"EPERM"}},
      {"setns_net", {"EPERM"}},
      {"setns_pid", {"EPERM"}},
      {"setns_user", {"EPERM"}},
      {"host_namespaces_via_proc", {"ENOENT"}},
      {"host_namespaces_pinned", {"ENOENT"}},
      {"host_pids_visible", {"ENOENT"}},
      {"ptrace_pid1", {"EPERM"}},
      {"ptrace_scan", {"EPERM", "ESRCH"}},
      {"proc1_root_is_host", {"ENOENT"}},
      {"process_vm_readv", {"EPERM"}},
      {"init_module", {"EPERM"}},
      {"finit_module", {"EPERM"}},
      {"kexec_load", {"EPERM"}},
      {"keyctl", {"EPERM"}},
      {"bpf", {"EPERM"}},
      {"perf_event_open", {"EPERM"}},
      {"userfaultfd", {"EPERM"}},
      {"io_uring_setup", {"EPERM"}},
      {"socket_raw", {"EPERM"}},
      {"socket_packet", {"EPERM"}},
      {"proc_sys_hostname", {"EROFS", "EACCES"}},
      {"reboot", {"EPERM"}},
      {"chroot_escape", {"EPERM"}},
      {"x32_getpid", {"ENOSYS"}},
      {"int80_getpid", {"ENOSYS"}},
      {"open_by_handle_at", {"EPERM"}},
      {"name_to_handle_at", {"EPERM"}},
      {"tiocsti_stdin", {"EPERM"}},
      {"tiocsti_devtty", kAnyErrno},  // no controlling tty (ENXIO) or EPERM if one opens
      {"dev_mem", {"ENOENT"}},
      {"dev_kmem", {"ENOENT"}},
      {"dev_port", {"ENOENT"}},
      {"dev_kmsg", {"ENOENT"}},
      {"mknod_block", {"EPERM"}},
  };
  return expected;
}

TEST_F(SecurityTest, EveryEscapeAttemptIsRefused) {
  auto r = Run({"--", "security_probe"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  auto got = ParseChecks(r.out);
  for (const auto& [name, allowed] : Expected()) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << name << ": no result line\n" << r.out;
      continue;
    }
    EXPECT_NE(it->second, "ok") << name << " SUCCEEDED inside the sandbox\n" << r.out;
    if (allowed != kAnyErrno) {
      EXPECT_TRUE(allowed.count(it->second))
          << name << " failed with " << it->second << ", expected one of the listed errnos";
    }
  }
  for (const auto& [name, result] : got) {
    EXPECT_TRUE(Expected().count(name)) << "unlisted check " << name << " = " << result;
  }
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
