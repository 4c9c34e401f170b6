#include "engine/boot_mode.h"

#include <gtest/gtest.h>

namespace ember::engine {
namespace {

TEST(BootMode, NamesRoundTrip) {
  for (BootMode mode : {BootMode::kPlain, BootMode::kCold, BootMode::kWarm, BootMode::kFork}) {
    auto parsed = ParseBootMode(BootModeName(mode));
    ASSERT_TRUE(parsed) << parsed.error().ToString();
    EXPECT_EQ(*parsed, mode);
  }
  auto bad = ParseBootMode("hot");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "unknown boot mode 'hot' (use plain, cold, warm or fork)");
}

TEST(BootMode, PicksTheFastestAvailable) {
  BootSources none;
  EXPECT_EQ(*PlanBoot(none, std::nullopt), BootMode::kPlain);
  BootSources cold{.snapshot_on_disk = true};
  EXPECT_EQ(*PlanBoot(cold, std::nullopt), BootMode::kCold);
  BootSources warm{.snapshot_resident = true, .snapshot_on_disk = true};
  EXPECT_EQ(*PlanBoot(warm, std::nullopt), BootMode::kWarm);
  BootSources all{.template_alive = true, .snapshot_resident = true, .snapshot_on_disk = true};
  EXPECT_EQ(*PlanBoot(all, std::nullopt), BootMode::kFork);
}

TEST(BootMode, ForcedModeIsUsedOrRefusedWithTheReason) {
  BootSources all{.template_alive = true, .snapshot_resident = true, .snapshot_on_disk = true};
  EXPECT_EQ(*PlanBoot(all, BootMode::kPlain), BootMode::kPlain);
  EXPECT_EQ(*PlanBoot(all, BootMode::kCold), BootMode::kCold);
  BootSources none{.template_reason = "template build failed: import error"};
  auto fork = PlanBoot(none, BootMode::kFork);
  ASSERT_FALSE(fork);
  EXPECT_EQ(fork.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(fork.error().message(),
            "boot mode fork is not available: template build failed: import error");
  auto warm = PlanBoot(none, BootMode::kWarm);
  ASSERT_FALSE(warm);
  EXPECT_EQ(warm.error().message(),
            "boot mode warm is not available: the function has no snapshot resident in memory");
}

}  // namespace
}  // namespace ember::engine
