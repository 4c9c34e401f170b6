#include "engine/shell_pool.h"

#include <gtest/gtest.h>

#include <chrono>

namespace ember::engine {
namespace {

using Clock = ShellPool<int>::Clock;
using std::chrono::seconds;

ShellPoolOptions Options(size_t min_ready, size_t max_ready) {
  return ShellPoolOptions{min_ready, max_ready, seconds(30)};
}

// What an engine's refill loop does: build (here: count up) while the pool wants another.
int Refill(ShellPool<int>& pool, const std::string& version, int* next) {
  int built = 0;
  if (!pool.StartRefill("f", version)) return 0;
  while (pool.NeedsAnother("f", version)) {
    EXPECT_FALSE(pool.Put("f", version, (*next)++).has_value());
    ++built;
  }
  return built;
}

TEST(ShellPoolTest, KeepsMinReadyOnlyForTheEnabledVersion) {
  ShellPool<int> pool(Options(2, 8));
  auto now = Clock::now();
  int next = 1;
  EXPECT_EQ(Refill(pool, "v1", &next), 0) << "nothing is kept before Enable";
  EXPECT_TRUE(pool.Enable("f", "v1", now).empty());
  EXPECT_EQ(Refill(pool, "v1", &next), 2);
  EXPECT_EQ(pool.Stats("f")->ready, 2u);
  EXPECT_FALSE(pool.Take("f", "v2", now).has_value()) << "a shell of v1 never serves v2";
  EXPECT_EQ(pool.Take("f", "v1", now), 1) << "oldest first";
}

TEST(ShellPoolTest, AMissDoublesTheTargetAndIsCounted) {
  ShellPool<int> pool(Options(1, 8));
  auto now = Clock::now();
  int next = 1;
  pool.Enable("f", "v1", now);
  EXPECT_EQ(Refill(pool, "v1", &next), 1);
  EXPECT_TRUE(pool.Take("f", "v1", now).has_value());
  EXPECT_FALSE(pool.Take("f", "v1", now).has_value());
  EXPECT_EQ(pool.Stats("f")->misses, 1u);
  EXPECT_EQ(pool.Stats("f")->target, 2u);
  EXPECT_EQ(Refill(pool, "v1", &next), 2);
}

TEST(ShellPoolTest, OneRefillAtATimeAndATakeDuringItIsNotLost) {
  ShellPool<int> pool(Options(2, 8));
  auto now = Clock::now();
  pool.Enable("f", "v1", now);
  ASSERT_TRUE(pool.StartRefill("f", "v1"));
  EXPECT_FALSE(pool.StartRefill("f", "v1")) << "a second refill while one runs";
  ASSERT_TRUE(pool.NeedsAnother("f", "v1"));
  pool.Put("f", "v1", 1);
  ASSERT_TRUE(pool.NeedsAnother("f", "v1"));
  pool.Put("f", "v1", 2);
  // A take between the refill's last build and its last check: the running refill sees it.
  EXPECT_TRUE(pool.Take("f", "v1", now).has_value());
  EXPECT_FALSE(pool.StartRefill("f", "v1"));
  EXPECT_TRUE(pool.NeedsAnother("f", "v1"));
  pool.Put("f", "v1", 3);
  EXPECT_FALSE(pool.NeedsAnother("f", "v1"));
  EXPECT_FALSE(pool.StartRefill("f", "v1")) << "full";
  EXPECT_TRUE(pool.Take("f", "v1", now).has_value());
  EXPECT_TRUE(pool.StartRefill("f", "v1")) << "the refill ended, a new one may start";
}

TEST(ShellPoolTest, AFailedBuildEndsTheRefill) {
  ShellPool<int> pool(Options(1, 8));
  pool.Enable("f", "v1", Clock::now());
  ASSERT_TRUE(pool.StartRefill("f", "v1"));
  pool.EndRefill("f");
  EXPECT_TRUE(pool.StartRefill("f", "v1"));
}

TEST(ShellPoolTest, ShellsOfAnOldVersionOrADisabledFunctionAreHandedBack) {
  ShellPool<int> pool(Options(2, 8));
  auto now = Clock::now();
  int next = 1;
  pool.Enable("f", "v1", now);
  Refill(pool, "v1", &next);
  auto stale = pool.Enable("f", "v2", now);
  EXPECT_EQ(stale, (std::vector<int>{1, 2}));
  EXPECT_EQ(pool.Put("f", "v1", 99), 99) << "built for v1 while v2 was enabled";
  EXPECT_FALSE(pool.NeedsAnother("f", "v1"));
  Refill(pool, "v2", &next);
  EXPECT_EQ(pool.Disable("f").size(), 2u);
  EXPECT_FALSE(pool.Stats("f").has_value());
  EXPECT_FALSE(pool.Take("f", "v2", now).has_value());
}

TEST(ShellPoolTest, IdlePeriodsShrinkTheTargetAndTrimHandsBackTheSurplus) {
  ShellPool<int> pool(Options(1, 8));
  auto now = Clock::now();
  int next = 1;
  pool.Enable("f", "v1", now);
  Refill(pool, "v1", &next);
  (void)pool.Take("f", "v1", now);
  (void)pool.Take("f", "v1", now);  // miss: target 2
  (void)pool.Take("f", "v1", now);  // miss: target 4
  EXPECT_EQ(Refill(pool, "v1", &next), 4);
  EXPECT_TRUE(pool.Trim(now + seconds(1)).empty());
  auto surplus = pool.Trim(now + seconds(61));  // two idle periods: 4 → 2 → 1
  EXPECT_EQ(surplus.size(), 3u);
  EXPECT_EQ(pool.Stats("f")->ready, 1u);
  EXPECT_EQ(pool.DisableAll().size(), 1u);
}

}  // namespace
}  // namespace ember::engine
