// A parked ember-restore (a restore shell, snapshot/shell_handoff.h): it does nothing until it is
// handed the plan, the image and the report channel, then takes the instance's hostname and
// restores as usual; a malformed handoff ends it with 125 and no restore, a closed socket with 0.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <string>

#include "integration/restore_harness.h"
#include "util/fixtures.h"

namespace ember::snapshot {
namespace {

using ember::testing::TempDir;
using namespace ember::snapshot::zdtm;  // NOLINT(google-build-using-namespace)

ShellHandoff MakeHandoff(const std::string& hostname) {
  ShellHandoff handoff{};
  handoff.magic = kShellHandoffMagic;
  handoff.hostname_length = static_cast<uint32_t>(hostname.size());
  std::memcpy(handoff.hostname, hostname.data(), hostname.size());
  return handoff;
}

class RestoreShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (ptrace, pid namespaces, set_tid)";
    image_ = dir_.path() + "/memory.snapshot";
    Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, {Zdtm("memory")}, image_));
  }
  TempDir dir_;
  std::string image_;
};

TEST_F(RestoreShellTest, ParkedUntilHandedItsInstanceThenRestoresWithItsHostname) {
  RestoredInstance shell;
  ASSERT_NO_FATAL_FAILURE(shell.Start(image_, RestoreSettings{}, /*parked=*/true));
  // Parked: no report comes (its report channel does not even exist yet) and it stays alive.
  EXPECT_EQ(shell.WaitForReport(std::chrono::milliseconds(300)), 0);
  EXPECT_EQ(::kill(shell.pid1(), 0), 0);

  ASSERT_EQ(shell.HandOff(MakeHandoff("i-0123456789ab")),
            static_cast<ssize_t>(sizeof(ShellHandoff)));
  RestoreReport report = shell.ReadReport();
  auto status = CheckRestoreReport(report);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_EQ(shell.Hostname(), "i-0123456789ab");
  EXPECT_EQ(shell.Finish(), "ok");
  EXPECT_EQ(shell.ExitCode(), 0);
}

TEST_F(RestoreShellTest, MalformedHandoffEndsTheShellWithoutARestore) {
  ShellHandoff bad_magic = MakeHandoff("i-1");
  bad_magic.magic = 0;
  ShellHandoff long_name = MakeHandoff("i-1");
  long_name.hostname_length = kShellHostnameMax + 1;
  struct Bad {
    const char* what;
    ShellHandoff handoff;
    size_t fds;
  } cases[] = {{"bad magic", bad_magic, kShellHandoffFds},
               {"hostname too long", long_name, kShellHandoffFds},
               {"two fds", MakeHandoff("i-1"), 2}};
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.what);
    RestoredInstance shell;
    ASSERT_NO_FATAL_FAILURE(shell.Start(image_, RestoreSettings{}, /*parked=*/true));
    ASSERT_EQ(shell.HandOff(c.handoff, c.fds), static_cast<ssize_t>(sizeof(ShellHandoff)));
    EXPECT_EQ(shell.ExitCode(), 125);
  }
}

TEST_F(RestoreShellTest, DroppedShellExitsQuietly) {
  RestoredInstance shell;
  ASSERT_NO_FATAL_FAILURE(shell.Start(image_, RestoreSettings{}, /*parked=*/true));
  shell.CloseHandoff();
  EXPECT_EQ(shell.ExitCode(), 0);
}

}  // namespace
}  // namespace ember::snapshot
