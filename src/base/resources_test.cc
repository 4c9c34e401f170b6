// The owning types of src/base: each releases what it owns exactly once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/child_process.h"
#include "base/mapped_region.h"
#include "base/scope_exit.h"
#include "base/unique_fd.h"

namespace ember {
namespace {

TEST(UniqueFdTest, ClosesOnceAndMoves) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd fd(raw);
    UniqueFd moved = std::move(fd);
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1) << "closed when the owner died";
}

TEST(ScopeExitTest, RunsUnlessDismissed) {
  int runs = 0;
  {
    ScopeExit cleanup([&] { ++runs; });
  }
  {
    ScopeExit cleanup([&] { ++runs; });
    cleanup.Dismiss();
  }
  EXPECT_EQ(runs, 1);
}

TEST(MappedRegionTest, MapsAndUnmaps) {
  auto region = MappedRegion::Map(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  ASSERT_TRUE(region) << region.error().ToString();
  region->as<char>()[0] = 'x';
  void* addr = region->data();
  region->reset();
  EXPECT_FALSE(region->valid());
  unsigned char vec;
  EXPECT_EQ(::mincore(addr, 4096, &vec), -1) << "unmapped";
  UniqueFd exe(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  auto file = MappedRegion::MapFileReadOnly(exe.get());
  ASSERT_TRUE(file) << file.error().ToString();
  EXPECT_EQ(std::string(file->as<char>() + 1, 3), "ELF");
}

TEST(ChildProcessTest, WaitReportsExitCodesAndSignals) {
  auto ok = ChildProcess::Spawn({"sh", "-c", "exit 3"}, false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->Wait()->ShellCode(), 3);
  auto killed = ChildProcess::Spawn({"sh", "-c", "kill -TERM $$"}, false);
  ASSERT_TRUE(killed);
  auto status = killed->Wait();
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->ShellCode(), 128 + SIGTERM);
  auto missing = ChildProcess::Spawn({"/no/such/tool"}, false);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().sys_errno(), ENOENT);
}

TEST(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  pid_t pid;
  {
    auto sleeper = ChildProcess::Spawn({"sleep", "100"}, false);
    ASSERT_TRUE(sleeper);
    pid = sleeper->pid();
    auto early = sleeper->WaitFor(std::chrono::milliseconds(10));
    ASSERT_TRUE(early);
    EXPECT_FALSE(early->has_value()) << "still running";
  }
  EXPECT_EQ(::kill(pid, 0), -1) << "killed and reaped, so the pid is gone";
}

TEST(ChildProcessTest, RunToolNamesTheFailure) {
  EXPECT_EQ(*RunTool({"sh", "-c", "echo out"}), "out\n");
  auto failed = RunTool({"sh", "-c", "echo broken >&2; exit 2"});
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find("exited with status 2: broken"), std::string::npos)
      << failed.error().message();
}

}  // namespace
}  // namespace ember
