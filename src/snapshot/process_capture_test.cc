// The clocks a checkpoint records: /proc/PID/timens_offsets parsed, and CaptureClocks for a
// process in our time namespace and in one with offsets (root: unshare(CLONE_NEWTIME)).
#include "snapshot/process_capture.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <string>

namespace ember::snapshot {
namespace {

constexpr int64_t kSecond = 1000000000;

uint64_t Now(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kSecond + static_cast<uint64_t>(ts.tv_nsec);
}

TEST(ParseTimensOffsets, ReadsTheKernelsPaddedLines) {
  auto offsets = ParseTimensOffsets(
      "monotonic        1000         0\n"
      "boottime           -5 500000000\n");
  ASSERT_TRUE(offsets) << offsets.error().ToString();
  EXPECT_EQ(offsets->monotonic_ns, 1000 * kSecond);
  EXPECT_EQ(offsets->boottime_ns, -5 * kSecond + 500000000);
  auto none = ParseTimensOffsets("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->monotonic_ns, 0);
  EXPECT_EQ(none->boottime_ns, 0);
}

TEST(ParseTimensOffsets, RefusesWhatTheKernelNeverWrites) {
  for (const char* text : {"monotonic 1\n", "monotonic 1 2 3\n", "monotonic 1 1000000000\n",
                           "boottime x 0\n", "monotonic 99999999999999999999 0\n"}) {
    auto offsets = ParseTimensOffsets(text);
    ASSERT_FALSE(offsets) << text;
    EXPECT_EQ(offsets.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(offsets.error().message().find("line 1 is not '<clock> <sec> <nsec>'"),
              std::string::npos)
        << offsets.error().message();
  }
  auto realtime = ParseTimensOffsets("monotonic 0 0\nrealtime 1 0\n");
  ASSERT_FALSE(realtime);
  EXPECT_NE(realtime.error().message().find("line 2 names clock 'realtime'"), std::string::npos)
      << realtime.error().message();
}

TEST(CaptureClocks, AProcessInOurNamespaceHasOurClocks) {
  const uint64_t before = Now(CLOCK_MONOTONIC);
  auto clocks = CaptureClocks(::getpid());
  ASSERT_TRUE(clocks) << clocks.error().ToString();
  EXPECT_GE(clocks->monotonic_ns, before);
  EXPECT_LE(clocks->monotonic_ns, Now(CLOCK_MONOTONIC));
  EXPECT_LE(clocks->boottime_ns, Now(CLOCK_BOOTTIME));
  EXPECT_GE(clocks->boottime_ns, clocks->monotonic_ns);  // boottime also counts suspend
}

// A child in a time namespace of its own with `offsets`, which with `unshare_again` has then
// unshared another one for its children without entering it. It waits in pause() until killed.
class TimeNamespaceChild {
 public:
  TimeNamespaceChild(const std::string& offsets, bool unshare_again) {
    int ready[2];
    EXPECT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      char status = 'x';
      if (::unshare(CLONE_NEWTIME) == 0) {
        int fd = ::open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
        bool written = offsets.empty() || ::write(fd, offsets.data(), offsets.size()) ==
                                              static_cast<ssize_t>(offsets.size());
        int ns = ::open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
        if (written && ::setns(ns, CLONE_NEWTIME) == 0 &&
            (!unshare_again || ::unshare(CLONE_NEWTIME) == 0)) {
          status = 'y';
        }
      }
      (void)!::write(ready[1], &status, 1);
      ::pause();
      ::_exit(0);
    }
    ::close(ready[1]);
    char status = 0;
    EXPECT_EQ(::read(ready[0], &status, 1), 1);
    ::close(ready[0]);
    ok_ = status == 'y';
  }
  ~TimeNamespaceChild() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  bool ok() const { return ok_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

TEST(CaptureClocks, AddsTheOffsetsOfTheProcesssTimeNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (a time namespace with offsets)";
  TimeNamespaceChild child("monotonic 500 0\nboottime 700 250\n", /*unshare_again=*/false);
  ASSERT_TRUE(child.ok()) << "could not set up the time namespace";
  auto offsets = ActiveTimeOffsets("/proc/" + std::to_string(child.pid()));
  ASSERT_TRUE(offsets) << offsets.error().ToString();
  EXPECT_EQ(offsets->monotonic_ns, 500 * kSecond);
  EXPECT_EQ(offsets->boottime_ns, 700 * kSecond + 250);
  const uint64_t monotonic = Now(CLOCK_MONOTONIC), boottime = Now(CLOCK_BOOTTIME);
  auto clocks = CaptureClocks(child.pid());
  ASSERT_TRUE(clocks) << clocks.error().ToString();
  // Our clocks plus the offsets, read a moment later (a generous bound, never asserted as speed).
  EXPECT_GE(clocks->monotonic_ns, monotonic + 500 * kSecond);
  EXPECT_LT(clocks->monotonic_ns, monotonic + 560 * kSecond);
  EXPECT_GE(clocks->boottime_ns, boottime + 700 * kSecond);
  EXPECT_LT(clocks->boottime_ns, boottime + 760 * kSecond);
}

// timens_offsets would show the namespace it has not entered, not the one its clocks come from.
TEST(CaptureClocks, RefusesAProcessThatHasNotEnteredItsTimeNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (unshare(CLONE_NEWTIME))";
  TimeNamespaceChild child("monotonic 500 0\n", /*unshare_again=*/true);
  ASSERT_TRUE(child.ok()) << "could not set up the time namespace";
  auto clocks = CaptureClocks(child.pid());
  ASSERT_FALSE(clocks);
  EXPECT_EQ(clocks.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(clocks.error().message().find("has unshared a time namespace it has not entered"),
            std::string::npos)
      << clocks.error().message();
}

}  // namespace
}  // namespace ember::snapshot
