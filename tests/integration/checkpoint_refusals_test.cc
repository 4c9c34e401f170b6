// What the checkpointer refuses, and that a refusal names the object and leaves the process
// running (each program still answers "ok" afterwards).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <string>

#include "base/fs.h"
#include "integration/zdtm_program.h"
#include "snapshot/checkpoint.h"

namespace ember::snapshot {
namespace {

using namespace ember::snapshot::zdtm;  // NOLINT(google-build-using-namespace)

class CheckpointRefusalTest : public CheckpointTest {};

TEST_F(CheckpointRefusalTest, RefusesAStoppedProcess) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("rseq")}));
  ASSERT_EQ(::kill(p.pid(), SIGSTOP), 0);
  std::string stat_path = "/proc/" + std::to_string(p.pid()) + "/stat";
  for (int i = 0; i < 1000 && ReadFile(stat_path)->find(") T ") == std::string::npos; ++i) {
    ::usleep(1000);
  }
  auto state = Capture(p);
  ASSERT_FALSE(state);
  EXPECT_EQ(state.error().code(), ErrorCode::kBusy);
  EXPECT_NE(state.error().ToString().find("the process is stopped"), std::string::npos);
  ASSERT_EQ(::kill(p.pid(), SIGCONT), 0);
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointRefusalTest, RefusesATcpSocketByName) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("tcp")}));
  auto state = Capture(p);
  ASSERT_FALSE(state);
  std::string msg = state.error().ToString();
  EXPECT_NE(msg.find("fd " + p.Get("fd") + " is a TCP socket 127.0.0.1:" + p.Get("port") +
                     " -> 0.0.0.0:0 LISTEN (socket:["),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("cannot checkpoint open network connections"), std::string::npos) << msg;
  EXPECT_EQ(state.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(p.Finish(), "ok");  // the refusal left it running
}

TEST_F(CheckpointRefusalTest, RefusesOtherKindsOfFdsByName) {
  const std::map<std::string, std::string> expected = {
      {"eventfd", "is an eventfd (anon_inode:[eventfd]); ember cannot checkpoint it"},
      {"epoll", "is an epoll instance (anon_inode:[eventpoll])"},
      {"pipe", "is a pipe (pipe:["},
      {"memfd", "is a memfd (/memfd:zdtm (deleted))"},
      {"unix", "is a unix datagram socket (socket:["},
  };
  for (const auto& [kind, message] : expected) {
    Program p;
    ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("fdkinds"), kind}));
    auto state = Capture(p);
    ASSERT_FALSE(state) << kind;
    std::string msg = state.error().ToString();
    EXPECT_NE(msg.find("fd " + p.Get("fd") + " " + message), std::string::npos) << msg;
    EXPECT_EQ(p.Finish(), "ok") << kind;
  }
}

TEST_F(CheckpointRefusalTest, RefusesAPendingSignalByName) {
  for (const char* mode : {"thread", "process"}) {
    Program p;
    ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("pending"), mode}));
    auto state = Capture(p);
    ASSERT_FALSE(state) << mode;
    std::string msg = state.error().ToString();
    std::string expect =
        std::string(mode) == "thread"
            ? "signal SIGUSR1 (10) is pending for thread " + std::to_string(p.pid())
            : "signal SIGUSR2 (12) is pending for the process";
    EXPECT_NE(msg.find(expect), std::string::npos) << msg;
    EXPECT_EQ(p.Finish(), "ok") << mode;  // still pending, not consumed by the checkpoint
  }
}

TEST_F(CheckpointRefusalTest, RefusesSharedAnonymousMemoryByName) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("shmem")}));
  auto state = Capture(p);
  ASSERT_FALSE(state);
  std::string msg = state.error().ToString();
  std::string addr = p.Get("shared").substr(2);  // without 0x
  EXPECT_NE(msg.find("area " + addr + "-"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shared anonymous memory"), std::string::npos) << msg;
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointRefusalTest, RefusesAnUnnamedSocketUnlessItIsTheControlChannel) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("rseq")}));
  CheckpointOptions options;
  options.control_fd = 5;  // not open in the process
  auto state = Capture(p, options);
  ASSERT_FALSE(state);
  EXPECT_NE(state.error().ToString().find("control channel fd 5 is not open"), std::string::npos);
  EXPECT_EQ(p.Finish(), "ok");
}

}  // namespace
}  // namespace ember::snapshot
