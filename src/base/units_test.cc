#include "base/units.h"

#include <gtest/gtest.h>

namespace ember {
namespace {

TEST(UnitsTest, ParsesSizes) {
  EXPECT_EQ(*ParseSize("128M"), 128ULL << 20);
  EXPECT_EQ(*ParseSize("1G"), 1ULL << 30);
  EXPECT_EQ(*ParseSize("512Ki"), 512ULL << 10);
  EXPECT_EQ(*ParseSize("2GiB"), 2ULL << 30);
  EXPECT_EQ(*ParseSize("64mb"), 64ULL << 20);
  EXPECT_EQ(*ParseSize("4096"), 4096ULL);
  EXPECT_EQ(*ParseSize("1.5K"), 1536ULL);
}

TEST(UnitsTest, RejectsBadSizesNamingTheValue) {
  for (const char* bad : {"0", "", "-1", "12Q", "M", "abc", "1..2M", "0.1"}) {
    auto r = ParseSize(bad, "memory");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(std::string("'") + bad + "'"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("memory"), std::string::npos);
  }
}

TEST(UnitsTest, ParsesDurations) {
  EXPECT_EQ(ParseDuration("10s")->count(), 10000);
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("2m")->count(), 120000);
  EXPECT_EQ(ParseDuration("1.5")->count(), 1500);
  EXPECT_FALSE(ParseDuration("0s"));
  EXPECT_FALSE(ParseDuration("-3s"));
  EXPECT_FALSE(ParseDuration("10x"));
}

TEST(UnitsTest, ParsesCpus) {
  EXPECT_DOUBLE_EQ(*ParseCpus("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseCpus("2"), 2.0);
  EXPECT_FALSE(ParseCpus("-1"));
  EXPECT_FALSE(ParseCpus("0"));
  EXPECT_FALSE(ParseCpus("half"));
  EXPECT_FALSE(ParseCpus("2000"));
}

TEST(UnitsTest, ParsesCounts) {
  EXPECT_EQ(*ParseCount("64", "pids", 1, 1 << 22), 64u);
  EXPECT_FALSE(ParseCount("0", "pids", 1, 100));
  EXPECT_FALSE(ParseCount("12a", "pids", 1, 100));
  EXPECT_FALSE(ParseCount("", "pids", 1, 100));
}

TEST(UnitsTest, FormatsForHumans) {
  EXPECT_EQ(FormatSize(128ULL << 20), "128M");
  EXPECT_EQ(FormatSize(1536), "1.5K");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(10000)), "10s");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(250)), "250ms");
}

}  // namespace
}  // namespace ember
