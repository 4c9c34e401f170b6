#include "engine/log_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace ember::engine {
namespace {

class LogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-logs-XXXXXX";
    dir_ = ::mkdtemp(templ);
    logs_ = dir_ + "/logs";
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  LogSink Sink(const std::string& instance, uint64_t max = 100) {
    auto sink = LogSink::Open(InstanceLogPath(logs_, "fn", instance), max);
    EXPECT_TRUE(sink) << sink.error().ToString();
    return std::move(*sink);
  }
  std::string File(const std::string& instance, const std::string& suffix = ".log") {
    auto text = ReadFile(logs_ + "/fn/" + instance + suffix);
    return text ? *text : "<missing>";
  }
  LogRead Read(const LogReadOptions& options) {
    auto read = ReadLog(logs_, "fn", options);
    EXPECT_TRUE(read) << read.error().ToString();
    return read ? std::move(*read) : LogRead{};
  }
  static std::string Text(const LogRead& read) {
    std::string text;
    for (const auto& chunk : read.chunks) text += chunk.text;
    return text;
  }
  // Sets the last-write time of an instance's log, so tests can order instances.
  void Age(const std::string& instance, time_t seconds) {
    struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (logs_ + "/fn/" + instance + ".log").c_str(), times, 0), 0);
  }

  std::string dir_, logs_;
};

TEST_F(LogSinkTest, AppendsAndReopensAppending) {
  {
    auto sink = Sink("i-1");
    ASSERT_TRUE(sink.Write("hello\n"));
    ASSERT_TRUE(sink.Write(""));
  }
  auto sink = Sink("i-1");
  ASSERT_TRUE(sink.Write("again\n"));
  EXPECT_EQ(File("i-1"), "hello\nagain\n");
  EXPECT_EQ(File("i-1", ".log.1"), "<missing>");
}

TEST_F(LogSinkTest, RotatesSoAnInstanceNeverHoldsMoreThanTwiceTheCap) {
  auto sink = Sink("i-1", 100);
  ASSERT_TRUE(sink.Write(std::string(60, 'a')));
  ASSERT_TRUE(sink.Write(std::string(60, 'b')));
  EXPECT_EQ(File("i-1", ".log.1"), std::string(60, 'a'));
  EXPECT_EQ(File("i-1"), std::string(60, 'b'));
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(sink.Write("line " + std::to_string(i) + "\n"));
  EXPECT_LE(File("i-1").size(), 100u);
  EXPECT_LE(File("i-1", ".log.1").size(), 100u);
  EXPECT_TRUE(File("i-1").ends_with("line 4999\n"));
  EXPECT_EQ(sink.dropped(), 0u);
}

TEST_F(LogSinkTest, AnOversizedWriteKeepsItsEnd) {
  auto sink = Sink("i-1", 100);
  ASSERT_TRUE(sink.Write("start\n"));
  std::string big = std::string(200, 'x') + std::string(50, 'y');
  ASSERT_TRUE(sink.Write(big));
  EXPECT_EQ(File("i-1"), big.substr(150));
  EXPECT_EQ(File("i-1", ".log.1"), "start\n");
  EXPECT_EQ(sink.dropped(), 150u);
}

TEST_F(LogSinkTest, FollowingGetsOnlyNewOutputAcrossRotations) {
  auto sink = Sink("i-1", 100);
  std::string written, seen;
  LogReadOptions options;
  options.instance = "i-1";
  // Before the instance wrote anything.
  auto read = Read(options);
  EXPECT_TRUE(read.chunks.empty());
  options.cursor = read.cursor;
  for (int round = 0; round < 40; ++round) {
    // Up to ~1.5 caps between polls: at most one rotation, so nothing is lost.
    for (int i = 0; i <= round % 5; ++i) {
      std::string line = "r" + std::to_string(round) + "." + std::to_string(i) + "\n";
      line += std::string(static_cast<size_t>(round % 3) * 9, '-') + "\n";
      ASSERT_TRUE(sink.Write(line));
      written += line;
    }
    read = Read(options);
    EXPECT_FALSE(read.skipped) << "round " << round;
    EXPECT_FALSE(read.more);
    seen += Text(read);
    options.cursor = read.cursor;
    ASSERT_EQ(seen, written) << "round " << round;
  }
  // Nothing new: nothing read, same place.
  read = Read(options);
  EXPECT_TRUE(read.chunks.empty());
  EXPECT_EQ(read.cursor, options.cursor);
}

TEST_F(LogSinkTest, AFollowerThatFellTwoRotationsBehindIsTold) {
  auto sink = Sink("i-1", 100);
  ASSERT_TRUE(sink.Write("first\n"));
  LogReadOptions options;
  auto read = Read(options);
  EXPECT_EQ(Text(read), "first\n");
  options.cursor = read.cursor;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(sink.Write("0123456789\n"));
  read = Read(options);
  EXPECT_TRUE(read.skipped);
  EXPECT_EQ(Text(read), File("i-1", ".log.1") + File("i-1"));
}

TEST_F(LogSinkTest, FirstReadCanStartAtTheTail) {
  auto sink = Sink("i-1", 100);
  ASSERT_TRUE(sink.Write(std::string(80, 'a')));
  ASSERT_TRUE(sink.Write(std::string(30, 'b')));  // rotates: .1 = a*80, .log = b*30
  LogReadOptions options;
  options.tail_bytes = 10;
  EXPECT_EQ(Text(Read(options)), std::string(10, 'b'));
  options.tail_bytes = 40;
  EXPECT_EQ(Text(Read(options)), std::string(10, 'a') + std::string(30, 'b'));
  options.tail_bytes = 1000;
  auto read = Read(options);
  EXPECT_EQ(Text(read), std::string(80, 'a') + std::string(30, 'b'));
  // Later reads with a cursor ignore tail_bytes.
  ASSERT_TRUE(sink.Write("new"));
  options.cursor = read.cursor;
  EXPECT_EQ(Text(Read(options)), "new");
}

TEST_F(LogSinkTest, ABudgetSplitsAReadWithoutLosingBytes) {
  auto a = Sink("a", 1000);
  auto b = Sink("b", 1000);
  ASSERT_TRUE(a.Write(std::string(300, 'a')));
  ASSERT_TRUE(b.Write(std::string(300, 'b')));
  Age("a", 1000);
  Age("b", 2000);
  LogReadOptions options;
  options.max_bytes = 250;
  std::string all;
  int reads = 0;
  for (;;) {
    auto read = Read(options);
    EXPECT_LE(Text(read).size(), 250u);
    all += Text(read);
    options.cursor = read.cursor;
    ++reads;
    if (!read.more) break;
    ASSERT_LT(reads, 10);
  }
  EXPECT_EQ(all, std::string(300, 'a') + std::string(300, 'b'));
  EXPECT_EQ(reads, 3);
}

TEST_F(LogSinkTest, AllInstancesNewestLastAndNewcomersFromTheStart) {
  auto old_one = Sink("i-old");
  auto new_one = Sink("i-new");
  ASSERT_TRUE(new_one.Write("from new\n"));
  ASSERT_TRUE(old_one.Write("from old\n"));
  Age("i-old", 1000);
  Age("i-new", 2000);
  EXPECT_EQ(*ListLogInstances(logs_, "fn"), (std::vector<std::string>{"i-old", "i-new"}));
  auto read = Read({});
  ASSERT_EQ(read.chunks.size(), 2u);
  EXPECT_EQ(read.chunks[0].instance, "i-old");
  EXPECT_EQ(read.chunks[0].text, "from old\n");
  EXPECT_EQ(read.chunks[1].instance, "i-new");
  LogReadOptions options;
  options.cursor = read.cursor;
  auto third = Sink("i.3");
  ASSERT_TRUE(third.Write("third\n"));
  ASSERT_TRUE(old_one.Write("more old\n"));
  read = Read(options);
  std::map<std::string, std::string> by_instance;
  for (const auto& chunk : read.chunks) by_instance[chunk.instance] = chunk.text;
  EXPECT_EQ(by_instance,
            (std::map<std::string, std::string>{{"i-old", "more old\n"}, {"i.3", "third\n"}}));
}

TEST_F(LogSinkTest, PruneKeepsTheNewestAndTheLive) {
  for (int i = 0; i < 6; ++i) {
    auto sink = Sink("i-" + std::to_string(i), 10);
    ASSERT_TRUE(sink.Write("0123456789"));
    ASSERT_TRUE(sink.Write("x"));  // rotated: both files exist
    Age("i-" + std::to_string(i), 1000 + i);
  }
  ASSERT_TRUE(PruneLogs(logs_, "fn", 2, {"i-0"}));
  EXPECT_EQ(*ListLogInstances(logs_, "fn"), (std::vector<std::string>{"i-0", "i-4", "i-5"}));
  EXPECT_FALSE(PathExists(logs_ + "/fn/i-1.log.1"));
  ASSERT_TRUE(PruneLogs(logs_, "fn", 0));
  EXPECT_TRUE(ListLogInstances(logs_, "fn")->empty());
  EXPECT_TRUE(PruneLogs(logs_, "absent"));
}

TEST_F(LogSinkTest, RemoveFunctionLogs) {
  auto sink = Sink("i-1");
  ASSERT_TRUE(sink.Write("x"));
  ASSERT_TRUE(RemoveFunctionLogs(logs_, "fn"));
  EXPECT_FALSE(PathExists(logs_ + "/fn"));
  EXPECT_TRUE(Read({}).chunks.empty());
  EXPECT_TRUE(RemoveFunctionLogs(logs_, "fn"));
}

TEST_F(LogSinkTest, RefusesBadNamesAndCursors) {
  EXPECT_EQ(ReadLog(logs_, "../etc", {}).error().code(), ErrorCode::kInvalidArgument);
  LogReadOptions options;
  options.instance = "../x";
  EXPECT_EQ(ReadLog(logs_, "fn", options).error().code(), ErrorCode::kInvalidArgument);
  for (const char* bad : {"garbage", "v1~x", "v1~a.1", "v1~a.b.c", "v1~../x.1.2", "v2"}) {
    LogReadOptions with_cursor;
    with_cursor.cursor = bad;
    auto read = ReadLog(logs_, "fn", with_cursor);
    ASSERT_FALSE(read) << bad;
    EXPECT_NE(read.error().message().find("invalid log cursor"), std::string::npos);
  }
  EXPECT_FALSE(RemoveFunctionLogs(logs_, ".."));
  EXPECT_FALSE(ValidateInstanceId("a/b"));
  EXPECT_FALSE(ValidateInstanceId(".."));
  EXPECT_TRUE(ValidateInstanceId("i-42.a_b"));
}

}  // namespace
}  // namespace ember::engine
