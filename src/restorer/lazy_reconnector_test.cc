// On-demand I/O reconnection end to end, what a restored process sees of its fds: reads,
// writes, stat and seek at the recorded offset, close/dup2 onto a pending fd, a missing file,
// mmap, close_range, threads (harness: lazy_reconnect_harness.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "restorer/lazy_reconnect_harness.h"

namespace ember::restorer::lazy_test {
namespace {

TEST_P(LazyReconnectTest, ReadReopensAtTheRecordedOffsetAndUntouchedFilesStayClosed) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 1, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 4, out);
    ReadTo(7, 2, out);  // the reopened file keeps its position
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fghijk");
  ASSERT_EQ(o.events.size(), 1u) << "fd 9 was never used and must not be opened";
  EXPECT_EQ(o.events[0].fd, 7);
  EXPECT_EQ(o.events[0].result, 0);
}

TEST_P(LazyReconnectTest, RestoresCloexecPerRecord) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 0, 1, a.c_str()},
                                       {9, O_RDONLY, 0, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(fcntl(7, F_GETFD)) + std::to_string(fcntl(9, F_GETFD)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "10");
  EXPECT_EQ(o.events.size(), 2u);
}

TEST_P(LazyReconnectTest, WriteThroughAnRdwrFdLandsAtTheOffset) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDWR, 4, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(write(7, "XY", 2)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "2");
  std::ifstream in(a);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "abcdXYghijklmnopqrstuvwxyz");
}

TEST_P(LazyReconnectTest, ClosingAPendingFdNeverReopensItAndTheNumberIsReusable) {
  const std::string a = MakeFile("a", kContent), other = MakeFile("other", "OTHER");
  // fd 3: the lowest free number once the process has closed the placeholder.
  const std::vector<LazyFile> files = {{3, O_RDONLY, 5, 0, a.c_str()}};
  const std::string other_path = other;
  const Outcome o = RunRestored(files, [&other_path](int out) {
    if (close(3) != 0) return 1;
    const int fd = open(other_path.c_str(), O_RDONLY);
    WriteString(out, std::to_string(fd) + ":");
    ReadTo(3, 5, out);
    struct stat st {};
    WriteString(out, fstat(3, &st) == 0 ? ":" + std::to_string(st.st_size) : ":E");
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "3:OTHER:5");
  EXPECT_TRUE(o.events.empty()) << "no reopen after close";
}

TEST_P(LazyReconnectTest, DupOntoAPendingFdDropsIt) {
  const std::string a = MakeFile("a", kContent), other = MakeFile("other", "OTHER");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const std::string other_path = other;
  const Outcome o = RunRestored(files, [&other_path](int out) {
    const int fd = open(other_path.c_str(), O_RDONLY);
    if (dup2(fd, 7) != 7) return 1;
    ReadTo(7, 5, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "OTHER");
  EXPECT_TRUE(o.events.empty());
}

TEST_P(LazyReconnectTest, AMissingFileFailsTheFirstUseWithEnoent) {
  const std::string missing = dir_ + "/deleted-since-checkpoint";
  const std::vector<LazyFile> files = {{7, O_RDONLY, 0, 0, missing.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 4, out);
    WriteString(out, ",");
    ReadTo(8, 4, out);  // an unrelated bad fd still gets EBADF
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "E" + std::to_string(ENOENT) + ",E" + std::to_string(EBADF));
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0].result, -ENOENT);
}

TEST_P(LazyReconnectTest, FstatAndLseekReopen) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    struct stat st {};
    if (fstat(7, &st) != 0) return 1;
    WriteString(out, std::to_string(st.st_size) + "," + std::to_string(st.st_ino) + ",");
    WriteString(out, std::to_string(lseek(9, 0, SEEK_CUR)) + ",");
    ReadTo(9, 2, out);
    return 0;
  });
  ExpectClean(o);
  struct stat st {};
  ASSERT_EQ(stat(a.c_str(), &st), 0);
  EXPECT_EQ(o.output, "26," + std::to_string(st.st_ino) + ",3,34");
  EXPECT_EQ(o.events.size(), 2u);
}

TEST_P(LazyReconnectTest, DupOfAPendingFdGivesAWorkingFd) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const int d = dup(7);
    if (d < 0) return 1;
    ReadTo(d, 3, out);
    ReadTo(7, 3, out);  // one open file description: the offset moved for both
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fghijk");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, MmapOfAPendingFdMapsTheFile) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    void* anon = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 7, 0);
    if (anon == MAP_FAILED) return 1;
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, 7, 0);
    if (p == MAP_FAILED) return 2;
    WriteString(out, std::string(static_cast<const char*>(p), 3));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "abc");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, CloseRangeDropsPendingFdsAndItsCloexecFormReopens) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    // Marks fd 7 close-on-exec: the flag must land on the real file, so 7 is reopened first.
    if (syscall(SYS_close_range, 7, 7, CLOSE_RANGE_CLOEXEC) != 0) return 1;
    WriteString(out, std::to_string(fcntl(7, F_GETFD)) + ",");
    if (syscall(SYS_close_range, 8, kOutFd - 1, 0) != 0) return 2;  // drops pending fd 9
    WriteString(out, std::to_string(fcntl(9, F_GETFD)) + ",");
    ReadTo(7, 2, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "1,-1,fg");
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0].fd, 7);
}

TEST_P(LazyReconnectTest, ThreadsShareOneReopen) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    char got[4] = {};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&got, i] {
        if (read(7, &got[i], 1) != 1) got[i] = '?';
      });
    }
    for (auto& t : threads) t.join();
    std::string s(got, 4);
    std::sort(s.begin(), s.end());
    WriteString(out, s);
    return 0;
  });
  ExpectClean(o);
  // One open file description for the whole process: four one-byte reads take four bytes.
  EXPECT_EQ(o.output, "fghi");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, OneCallNamingTwoPendingFdsReopensBoth) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_WRONLY, 2, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(sendfile(9, 7, nullptr, 3)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "3");
  std::ifstream in(b);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "01fgh56789");
  EXPECT_EQ(o.events.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(PlaceholderCheck, LazyReconnectTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Kcmp") : std::string("StateMachine");
                         });

}  // namespace
}  // namespace ember::restorer::lazy_test
