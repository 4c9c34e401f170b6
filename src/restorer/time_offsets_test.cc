// The clock offsets of a restored process's time namespace: the rule (recorded, now -> offset),
// the line the kernel takes, and SetTimeOffsets on a real time namespace, in a forked child
// (unshare(CLONE_NEWTIME) cannot be undone; needs root for CAP_SYS_TIME).
#include "restorer/time_offsets.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

constexpr uint64_t kSecond = 1000000000ULL;

std::string Line(const char* clock, uint64_t offset_ns) {
  char out[kTimensLineMax];
  unsigned long length = FormatTimensOffset(clock, offset_ns, out);
  EXPECT_LE(length, kTimensLineMax);
  return std::string(out, length);
}

uint64_t Now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kSecond + static_cast<uint64_t>(ts.tv_nsec);
}

// Runs `body` in a forked child; returns its exit code (or 100 + signal).
int InChild(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    _exit(body());
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// The offsets /proc/self/timens_offsets shows (those of the namespace for children), in ns.
bool ReadOffsets(int64_t* monotonic, int64_t* boottime) {
  FILE* f = fopen("/proc/self/timens_offsets", "re");
  if (f == nullptr) return false;
  char name[16];
  long long sec = 0, nsec = 0;
  int found = 0;
  while (fscanf(f, "%15s %lld %lld", name, &sec, &nsec) == 3) {
    int64_t value = sec * static_cast<int64_t>(kSecond) + nsec;
    const std::string clock(name);
    if (clock == "monotonic" || clock == "boottime") {
      *(clock == "monotonic" ? monotonic : boottime) = value;
      ++found;
    }
  }
  fclose(f);
  return found == 2;
}

// A grandchild born in the namespace: exit 0 when its clocks read at least `monotonic` and
// `boottime`.
int ClocksInNamespaceAtLeast(uint64_t monotonic, uint64_t boottime) {
  const pid_t pid = fork();
  if (pid == 0) {
    _exit(Now(CLOCK_MONOTONIC) >= monotonic && Now(CLOCK_BOOTTIME) >= boottime ? 0 : 1);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(ClockOffsetNs, ZeroWhenTheHostClockIsAlreadyPastTheRecordedOne) {
  EXPECT_EQ(ClockOffsetNs(5 * kSecond, 9 * kSecond), 0u);  // same boot, later
  EXPECT_EQ(ClockOffsetNs(5 * kSecond, 5 * kSecond), 0u);
  EXPECT_EQ(ClockOffsetNs(0, 1), 0u);  // not recorded
  EXPECT_EQ(ClockOffsetNs(0, 0), 0u);
}

TEST(ClockOffsetNs, ContinuesFromTheRecordedClockAfterAReboot) {
  EXPECT_EQ(ClockOffsetNs(1000 * kSecond + 7, 30 * kSecond + 9), 970 * kSecond - 2);
  EXPECT_EQ(ClockOffsetNs(UINT64_MAX, 1), UINT64_MAX - 1);
  EXPECT_EQ(ClockOffsetNs(1, 0), 1u);
}

TEST(FormatTimensOffset, SecondsAndNanosecondsWithTheCarry) {
  EXPECT_EQ(Line("monotonic", 1500 * kSecond + 123), "monotonic 1500 123\n");
  EXPECT_EQ(Line("boottime", 0), "boottime 0 0\n");
  EXPECT_EQ(Line("monotonic", kSecond - 1), "monotonic 0 999999999\n");
  EXPECT_EQ(Line("monotonic", kSecond), "monotonic 1 0\n");
  EXPECT_EQ(Line("boottime", 2 * kSecond + 1), "boottime 2 1\n");
  EXPECT_EQ(Line("monotonic", UINT64_MAX), "monotonic 18446744073 709551615\n");
}

// Restored after a "reboot": the recorded clocks are ahead of the host's; the namespace's
// clocks continue from them.
TEST(SetTimeOffsets, LiftsTheClocksToTheRecordedValues) {
  EXPECT_EQ(InChild([] {
              if (unshare(CLONE_NEWTIME) != 0) return 1;
              snapshot::PlanClocks recorded{Now(CLOCK_MONOTONIC) + 1000 * kSecond,
                                            Now(CLOCK_BOOTTIME) + 2000 * kSecond};
              SetTimeOffsets(recorded);
              int64_t monotonic = 0, boottime = 0;
              if (!ReadOffsets(&monotonic, &boottime)) return 2;
              // The host's clocks moved on between the two reads: a little less than asked.
              if (monotonic > 1000 * static_cast<int64_t>(kSecond)) return 3;
              if (monotonic < 999 * static_cast<int64_t>(kSecond)) return 4;
              if (boottime > 2000 * static_cast<int64_t>(kSecond)) return 5;
              if (boottime < 1999 * static_cast<int64_t>(kSecond)) return 6;
              return ClocksInNamespaceAtLeast(recorded.monotonic_ns, recorded.boottime_ns) == 0 ? 0
                                                                                                : 7;
            }),
            0);
}

// Restored on the boot it was taken on: nothing is written, the clocks are the host's.
TEST(SetTimeOffsets, WritesNothingOnTheSameBoot) {
  EXPECT_EQ(InChild([] {
              if (unshare(CLONE_NEWTIME) != 0) return 1;
              SetTimeOffsets({Now(CLOCK_MONOTONIC) - kSecond, Now(CLOCK_BOOTTIME) - kSecond});
              int64_t monotonic = -1, boottime = -1;
              if (!ReadOffsets(&monotonic, &boottime)) return 2;
              if (monotonic != 0 || boottime != 0) return 3;
              // Only one clock ahead: only its offset moves.
              SetTimeOffsets({0, Now(CLOCK_BOOTTIME) + 60 * kSecond});
              if (!ReadOffsets(&monotonic, &boottime)) return 4;
              if (monotonic != 0 || boottime < 59 * static_cast<int64_t>(kSecond)) return 5;
              return 0;
            }),
            0);
}

// Once a task entered the namespace the kernel freezes its offsets: the failure is reported as
// the time-namespace stage with the clock and errno, and the restorer exits 125.
TEST(SetTimeOffsets, AFrozenNamespaceIsReportedWithTheClock) {
  int report[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  EXPECT_EQ(InChild([&report] {
              close(report[0]);
              g_ctx.report_fd = report[1];
              if (unshare(CLONE_NEWTIME) != 0) return 1;
              int ns = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
              if (ns < 0 || setns(ns, CLONE_NEWTIME) != 0) return 2;
              SetTimeOffsets({Now(CLOCK_MONOTONIC) + 1000 * kSecond, 0});
              return 3;  // not reached: SetTimeOffsets exits 125
            }),
            125);
  close(report[1]);
  snapshot::RestoreReport r{};
  ASSERT_EQ(read(report[0], &r, sizeof r), static_cast<ssize_t>(sizeof r));
  close(report[0]);
  EXPECT_EQ(r.magic, snapshot::kReportMagic);
  EXPECT_EQ(r.stage, snapshot::kStageTimeNamespace);
  EXPECT_EQ(r.error, EACCES);
  EXPECT_EQ(r.detail, static_cast<uint64_t>(CLOCK_MONOTONIC));
}

}  // namespace
}  // namespace ember::restorer
