#include "sandbox/cgroup/limits.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/fs.h"

namespace ember::cgroup {
namespace {

using C = Controller;

sandbox::CgroupLimits Full() {
  sandbox::CgroupLimits l;
  l.memory_bytes = 128ULL << 20;
  l.cpus = 0.5;
  l.pids = 64;
  return l;
}

TEST(CgroupLimits, V1PlanWithSwapAccounting) {
  auto plan = PlanLimits(Version::kV1, Full(), {.v1_memsw = true});
  ASSERT_TRUE(plan) << plan.error().ToString();
  std::vector<ControlWrite> want = {
      {C::kMemory, "memory.memsw.limit_in_bytes", "-1"},
      {C::kMemory, "memory.limit_in_bytes", "134217728"},
      {C::kMemory, "memory.memsw.limit_in_bytes", "134217728"},
      {C::kCpu, "cpu.cfs_period_us", "100000"},
      {C::kCpu, "cpu.cfs_quota_us", "50000"},
      {C::kPids, "pids.max", "64"},
  };
  EXPECT_EQ(*plan, want);
}

TEST(CgroupLimits, V1UnsetLimitsResetToUnlimited) {
  auto plan = PlanLimits(Version::kV1, {}, {.v1_memsw = false});
  ASSERT_TRUE(plan);
  std::vector<ControlWrite> want = {
      {C::kMemory, "memory.limit_in_bytes", "-1"},
      {C::kCpu, "cpu.cfs_period_us", "100000"},
      {C::kCpu, "cpu.cfs_quota_us", "-1"},
      {C::kPids, "pids.max", "max"},
  };
  EXPECT_EQ(*plan, want);
}

TEST(CgroupLimits, V2Plan) {
  auto plan = PlanLimits(Version::kV2, Full(), {.v2_swap_max = true});
  ASSERT_TRUE(plan);
  std::vector<ControlWrite> want = {
      {C::kMemory, "memory.max", "134217728"},
      {C::kMemory, "memory.swap.max", "0"},
      {C::kCpu, "cpu.max", "50000 100000"},
      {C::kPids, "pids.max", "64"},
  };
  EXPECT_EQ(*plan, want);
}

TEST(CgroupLimits, V2UnsetLimitsResetToMax) {
  auto plan = PlanLimits(Version::kV2, {}, {.v2_swap_max = true});
  ASSERT_TRUE(plan);
  std::vector<ControlWrite> want = {
      {C::kMemory, "memory.max", "max"},
      {C::kMemory, "memory.swap.max", "max"},
      {C::kCpu, "cpu.max", "max 100000"},
      {C::kPids, "pids.max", "max"},
  };
  EXPECT_EQ(*plan, want);
}

TEST(CgroupLimits, CpuQuotaRoundsAndHasAFloor) {
  sandbox::CgroupLimits l;
  l.cpus = 2.0;
  auto two = PlanLimits(Version::kV2, l, {});
  ASSERT_TRUE(two);
  EXPECT_EQ((*two)[1].value, "200000 100000");
  l.cpus = 0.001;  // 100µs: below the kernel's 1ms minimum quota
  auto tiny = PlanLimits(Version::kV1, l, {});
  ASSERT_TRUE(tiny);
  EXPECT_EQ((*tiny)[2], (ControlWrite{C::kCpu, "cpu.cfs_quota_us", "1000"}));
}

TEST(CgroupLimits, RejectsZeroAndNonsense) {
  sandbox::CgroupLimits l;
  l.memory_bytes = 0;
  EXPECT_FALSE(PlanLimits(Version::kV1, l, {}));
  l = {};
  l.pids = 0;
  EXPECT_FALSE(PlanLimits(Version::kV2, l, {}));
  l = {};
  l.cpus = -1;
  auto neg = PlanLimits(Version::kV2, l, {});
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code(), ErrorCode::kInvalidArgument);
}

TEST(CgroupLimits, ApplyWritesEachFileAndNamesTheFailingOne) {
  char templ[] = "/tmp/ember-limits-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  std::string dir = templ;
  for (const char* f : {"memory.max", "cpu.max", "pids.max"}) {
    ASSERT_TRUE(WriteFileAtomic(dir + "/" + f, "max\n"));
  }
  SlotDirs dirs{dir, dir, dir};
  auto plan = PlanLimits(Version::kV2, Full(), {.v2_swap_max = false});
  ASSERT_TRUE(plan);
  ASSERT_TRUE(ApplyWrites(*plan, dirs));
  EXPECT_EQ(*ReadFile(dir + "/memory.max"), "134217728");
  EXPECT_EQ(*ReadFile(dir + "/cpu.max"), "50000 100000");
  EXPECT_EQ(*ReadFile(dir + "/pids.max"), "64");

  // memory.swap.max does not exist in the fixture: the error says which file.
  auto with_swap = PlanLimits(Version::kV2, Full(), {.v2_swap_max = true});
  auto applied = ApplyWrites(*with_swap, dirs);
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().ToString().find(dir + "/memory.swap.max"), std::string::npos)
      << applied.error().ToString();
  ASSERT_TRUE(RemoveTree(dir));
}

TEST(CgroupLimits, SlotDirsDistinctKeepsOrderAndDedupes) {
  SlotDirs v1{"/m/x", "/c/x", "/p/x"};
  EXPECT_EQ(v1.Distinct(), (std::vector<std::string>{"/m/x", "/c/x", "/p/x"}));
  SlotDirs v2{"/u/x", "/u/x", "/u/x"};
  EXPECT_EQ(v2.Distinct(), std::vector<std::string>{"/u/x"});
}

}  // namespace
}  // namespace ember::cgroup
