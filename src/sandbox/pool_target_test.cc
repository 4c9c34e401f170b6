// The adaptive sizing of pre-creating pools (the network-namespace pool uses it), driven with a
// fake clock.
#include "sandbox/pool_target.h"

#include <gtest/gtest.h>

namespace ember::sandbox {
namespace {

using std::chrono::seconds;
using Clock = PoolTarget::Clock;

const Clock::time_point kStart = Clock::time_point() + seconds(1000);

TEST(PoolTargetTest, StartsAtMinReady) {
  PoolTarget target(3, 64, seconds(30), kStart);
  EXPECT_EQ(target.value(), 3u);
  EXPECT_EQ(target.NextShrinkAt(), Clock::time_point::max());
}

TEST(PoolTargetTest, MissDoublesUpToMax) {
  PoolTarget target(2, 20, seconds(30), kStart);
  target.OnTake(kStart, /*miss=*/true);
  EXPECT_EQ(target.value(), 4u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 8u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 16u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 20u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 20u);
}

TEST(PoolTargetTest, HitDoesNotRaise) {
  PoolTarget target(2, 64, seconds(30), kStart);
  target.OnTake(kStart, /*miss=*/false);
  EXPECT_EQ(target.value(), 2u);
}

TEST(PoolTargetTest, MissFromZeroStartsAtOne) {
  PoolTarget target(0, 8, seconds(30), kStart);
  EXPECT_EQ(target.value(), 0u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 1u);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 2u);
}

TEST(PoolTargetTest, MaxZeroNeverKeepsAnything) {
  PoolTarget target(0, 0, seconds(30), kStart);
  target.OnTake(kStart, true);
  EXPECT_EQ(target.value(), 0u);
}

TEST(PoolTargetTest, IdlePeriodHalvesTowardsMin) {
  PoolTarget target(3, 64, seconds(30), kStart);
  for (int i = 0; i < 4; ++i) target.OnTake(kStart, true);  // 3 → 6 → 12 → 24 → 48
  ASSERT_EQ(target.value(), 48u);
  EXPECT_EQ(target.NextShrinkAt(), kStart + seconds(30));

  EXPECT_FALSE(target.OnTick(kStart + seconds(29)));
  EXPECT_EQ(target.value(), 48u);
  EXPECT_TRUE(target.OnTick(kStart + seconds(30)));
  EXPECT_EQ(target.value(), 24u);
  // The idle clock restarted at the shrink: the next halving is one more period away.
  EXPECT_EQ(target.NextShrinkAt(), kStart + seconds(60));
  EXPECT_FALSE(target.OnTick(kStart + seconds(59)));
  EXPECT_TRUE(target.OnTick(kStart + seconds(60)));
  EXPECT_EQ(target.value(), 12u);
}

TEST(PoolTargetTest, LongIdleShrinksOncePerElapsedPeriodAndStopsAtMin) {
  PoolTarget target(3, 64, seconds(30), kStart);
  for (int i = 0; i < 4; ++i) target.OnTake(kStart, true);
  ASSERT_EQ(target.value(), 48u);
  EXPECT_TRUE(target.OnTick(kStart + seconds(95)));  // three periods: 48 → 24 → 12 → 6
  EXPECT_EQ(target.value(), 6u);
  EXPECT_TRUE(target.OnTick(kStart + seconds(3600)));
  EXPECT_EQ(target.value(), 3u);
  EXPECT_EQ(target.NextShrinkAt(), Clock::time_point::max());
  EXPECT_FALSE(target.OnTick(kStart + seconds(7200)));
}

TEST(PoolTargetTest, TakesKeepTheTargetUp) {
  PoolTarget target(2, 64, seconds(30), kStart);
  target.OnTake(kStart, true);
  ASSERT_EQ(target.value(), 4u);
  // Steady demand that the pool keeps up with: no misses, but never idle for a full period.
  for (int i = 1; i <= 10; ++i) {
    target.OnTake(kStart + seconds(20 * i), false);
    EXPECT_FALSE(target.OnTick(kStart + seconds(20 * i + 10)));
  }
  EXPECT_EQ(target.value(), 4u);
}

}  // namespace
}  // namespace ember::sandbox
