#include "sandbox/cgroup/dynmods.h"

#include <gtest/gtest.h>

namespace ember::cgroup {
namespace {

TEST(DynmodsTest, TheHierarchyCarriesTheCgroup2Options) {
  const std::string hybrid =
      "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory\n"
      "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:13 - cgroup cgroup rw,cpu\n"
      "37 25 0:32 / /sys/fs/cgroup/pids rw,relatime shared:14 - cgroup cgroup rw,pids\n"
      "40 25 0:35 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw,nsdelegate\n";
  auto h = DecideHierarchy(ParseCgroupMounts(hybrid), "hugetlb\n");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->v2_root, "/sys/fs/cgroup/unified");
  EXPECT_EQ(h->v2_options, "rw,nsdelegate");
}

TEST(DynmodsTest, KeepsExistingFlagsBecauseARemountResetsThem) {
  EXPECT_EQ(FavorDynmodsOptions("rw,nsdelegate,memory_recursiveprot"),
            "nsdelegate,memory_recursiveprot,favordynmods");
  EXPECT_EQ(FavorDynmodsOptions("rw"), "favordynmods");
  EXPECT_EQ(FavorDynmodsOptions("rw,favordynmods"), "");
}

}  // namespace
}  // namespace ember::cgroup
