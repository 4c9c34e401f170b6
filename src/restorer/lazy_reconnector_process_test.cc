// On-demand I/O reconnection end to end, the process side: programs the restored process forks
// and execs, credentials (kcmp needs a dumpable process), the sandbox's own seccomp policy
// stacked on the lazy filter, the reconnector's confinement and its events channel
// (harness: lazy_reconnect_harness.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "restorer/lazy_reconnect_harness.h"
#include "sandbox/seccomp.h"

namespace ember::restorer::lazy_test {
namespace {

class LazyReconnectProcessTest : public LazyReconnectTest {};

TEST_P(LazyReconnectProcessTest, AnExecedProgramInheritsAPendingFd) {
  const std::string a = MakeFile("a", kContent);
  // fd 9 is not close-on-exec: a program run by the process may read it, and gets the file.
  const std::vector<LazyFile> files = {{9, O_RDONLY, 3, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const pid_t child = fork();
    if (child == 0) {
      dup2(out, 1);
      execl("/bin/sh", "sh", "-c", "head -c 3 <&9", nullptr);
      _exit(127);
    }
    int status = 0;
    return waitpid(child, &status, 0) == child && status == 0 ? 0 : 1;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "def");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectProcessTest, ServesOnAfterTheEventsReaderIsGone) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  close_events_early_ = true;
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh");
}

TEST_P(LazyReconnectProcessTest, WorksUnderTheSandboxPolicy) {
  // The restored process also runs under the sandbox's allowlist (installed after the lazy
  // filter, per thread, at the jump); the two stack.
  const auto program = sandbox::CompileSeccomp(sandbox::SeccompPolicy::kStrict);
  ASSERT_TRUE(program.has_value()) << program.error().message();
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [&program](int out) {
    if (sandbox::InstallSeccomp(*program) != 0) return 1;
    ReadTo(7, 3, out);
    if (close(9) != 0) return 2;
    WriteString(out, syscall(SYS_kcmp, getpid(), getpid(), 0, 7, 7) == -1 ? "|denied" : "|kcmp");
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|denied");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectProcessTest, TheReconnectorConfinesItself) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [this](int out) {
    ReadTo(7, 1, out);  // served: the reconnector is in its loop
    std::ifstream status("/proc/" + std::to_string(reconnector_pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Seccomp:", 0) == 0) WriteString(out, "|" + line);
    }
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "f|Seccomp:\t2");
}

INSTANTIATE_TEST_SUITE_P(PlaceholderCheck, LazyReconnectProcessTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Kcmp") : std::string("StateMachine");
                         });

// Only the kcmp check sees fd tables: a forked child that uses or closes a pending fd does not
// change what the parent's fd holds.
class LazyReconnectForkTest : public LazyReconnectTest {};

TEST_P(LazyReconnectForkTest, ParentAndForkedChildEachReopenOnFirstUse) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 2, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const pid_t child = fork();
    if (child == 0) {
      ReadTo(7, 3, out);
      close(9);  // the child's copy only
      _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || status != 0) return 1;
    WriteString(out, "|");
    ReadTo(7, 3, out);
    ReadTo(9, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|fghcde");
  EXPECT_EQ(o.events.size(), 3u);
}

// As in a sandbox: both processes run as the same unprivileged uid, with no capability. kcmp
// then needs the restored process to be dumpable; without that, the reconnector falls back to
// the state machine and a process that does not fork is still served.
TEST_P(LazyReconnectForkTest, WorksAsAnUnprivilegedUser) {
  constexpr uid_t kNobody = 65534;
  run_as_ = kNobody;
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 2, 0, a.c_str()}};
  const auto body = [](int out) {
    if (geteuid() != kNobody) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(9);
      ReadTo(7, 3, out);
      _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || status != 0) return 2;
    WriteString(out, "|");
    ReadTo(9, 3, out);
    return 0;
  };
  Outcome o = RunRestored(files, body);
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|cde") << "dumpable: kcmp sees the parent's fd 9 is still pending";

  dumpable_ = false;
  o = RunRestored(files, body);
  ExpectClean(o);
  // kcmp is refused; the state machine took the child's close(9) for the parent's too.
  EXPECT_EQ(o.output, "fgh|E" + std::to_string(EBADF));
  o = RunRestored(files, [](int out) {
    ReadTo(7, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh") << "without kcmp a process that does not fork is still served";
}

INSTANTIATE_TEST_SUITE_P(PlaceholderCheck, LazyReconnectForkTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return std::string("Kcmp"); });

}  // namespace
}  // namespace ember::restorer::lazy_test
