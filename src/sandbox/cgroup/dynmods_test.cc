#include "sandbox/cgroup/dynmods.h"

#include <gtest/gtest.h>

namespace ember::cgroup {
namespace {

TEST(DynmodsTest, FindsTheCgroup2MountAndItsOptions) {
  const std::string hybrid =
      "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory\n"
      "40 25 0:35 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw,nsdelegate\n";
  auto mount = FindCgroup2Mount(hybrid);
  ASSERT_TRUE(mount);
  EXPECT_EQ(mount->mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(mount->options, "rw,nsdelegate");
  auto none = FindCgroup2Mount("35 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->mount_point, "");
}

TEST(DynmodsTest, KeepsExistingFlagsBecauseARemountResetsThem) {
  EXPECT_EQ(FavorDynmodsOptions("rw,nsdelegate,memory_recursiveprot"),
            "nsdelegate,memory_recursiveprot,favordynmods");
  EXPECT_EQ(FavorDynmodsOptions("rw"), "favordynmods");
  EXPECT_EQ(FavorDynmodsOptions("rw,favordynmods"), "");
}

}  // namespace
}  // namespace ember::cgroup
