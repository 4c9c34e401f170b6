#include "sandbox/cgroup/hierarchy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/fs.h"

namespace ember::cgroup {
namespace {

// The build machine's own mountinfo (2026-11): v1 controllers one per mount, a name=systemd
// hierarchy, and a cgroup2 mount at /sys/fs/cgroup/unified that only has hugetlb.
constexpr std::string_view kHybridHost = R"(22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
)";

// Debian 12 / systemd default: pure v2.
constexpr std::string_view kPureV2 =
    R"(25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
)";

// systemd's legacy layout: co-mounted cpu,cpuacct, no cgroup2 at all.
constexpr std::string_view kPureV1 =
    R"(24 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 24 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 24 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 24 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
)";

TEST(CgroupHierarchy, ParsesV1ControllersFromSuperOptions) {
  auto mounts = ParseCgroupMounts(kPureV1);
  ASSERT_EQ(mounts.size(), 3u);  // name=systemd has no controller
  EXPECT_EQ(mounts[0].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(mounts[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(mounts[1].controllers, (std::vector<std::string>{"memory"}));
  EXPECT_EQ(mounts[0].version, Version::kV1);
}

TEST(CgroupHierarchy, ThisHostIsHybridAndUsesV1) {
  auto h = DecideHierarchy(ParseCgroupMounts(kHybridHost), "hugetlb\n");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->layout, "hybrid");
  EXPECT_EQ(h->version, Version::kV1);
  EXPECT_EQ(h->v2_root, "/sys/fs/cgroup/unified");
  EXPECT_EQ(h->v2_controllers, (std::vector<std::string>{"hugetlb"}));
  EXPECT_EQ(h->RootFor(Controller::kMemory), "/sys/fs/cgroup/memory");
  EXPECT_EQ(h->RootFor(Controller::kCpu), "/sys/fs/cgroup/cpu");
  EXPECT_EQ(h->RootFor(Controller::kPids), "/sys/fs/cgroup/pids");
  EXPECT_EQ(h->Roots(), (std::vector<std::string>{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu",
                                                  "/sys/fs/cgroup/pids"}));
}

TEST(CgroupHierarchy, PureV2UsesTheUnifiedRoot) {
  auto h =
      DecideHierarchy(ParseCgroupMounts(kPureV2), "cpuset cpu io memory hugetlb pids rdma misc\n");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->layout, "v2");
  EXPECT_EQ(h->version, Version::kV2);
  EXPECT_EQ(h->RootFor(Controller::kPids), "/sys/fs/cgroup");
  EXPECT_EQ(h->Roots(), std::vector<std::string>{"/sys/fs/cgroup"});
}

TEST(CgroupHierarchy, PureV1WithCoMountedCpu) {
  auto h = DecideHierarchy(ParseCgroupMounts(kPureV1), "");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->layout, "v1");
  EXPECT_EQ(h->version, Version::kV1);
  EXPECT_EQ(h->RootFor(Controller::kCpu), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(h->v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(h->Roots().size(), 3u);
}

TEST(CgroupHierarchy, HybridWithControllersOnlyInV2UsesV2) {
  // A hybrid host whose v1 mounts carry none of ember's controllers.
  std::string text =
      "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
      "41 31 0:35 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n"
      "42 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  auto h = DecideHierarchy(ParseCgroupMounts(text), "cpu memory pids");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->layout, "hybrid");
  EXPECT_EQ(h->version, Version::kV2);
  EXPECT_EQ(h->RootFor(Controller::kMemory), "/sys/fs/cgroup/unified");
}

TEST(CgroupHierarchy, MissingControllerIsNamed) {
  std::string no_pids(kPureV1);
  no_pids.erase(no_pids.find("32 24 0:29"));
  auto h = DecideHierarchy(ParseCgroupMounts(no_pids), "");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(h.error().message().find("controller pids missing"), std::string::npos)
      << h.error().message();

  auto v2 = DecideHierarchy(ParseCgroupMounts(kPureV2), "cpuset cpu io memory");
  ASSERT_FALSE(v2);
  EXPECT_NE(v2.error().message().find("pids"), std::string::npos);
  EXPECT_NE(v2.error().message().find("/sys/fs/cgroup/cgroup.controllers"), std::string::npos)
      << v2.error().message();
}

TEST(CgroupHierarchy, SplitBetweenVersionsIsRefused) {
  std::string text =
      "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  auto h = DecideHierarchy(ParseCgroupMounts(text), "pids hugetlb");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(h.error().message().find("v2 (pids)"), std::string::npos) << h.error().message();
}

TEST(CgroupHierarchy, NoCgroupMountAtAll) {
  auto h = DecideHierarchy(ParseCgroupMounts("22 27 0:21 / /proc rw - proc proc rw\n"), "");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), ErrorCode::kUnavailable);
}

TEST(CgroupHierarchy, DecodesEscapedMountPoints) {
  auto mounts = ParseCgroupMounts(
      "29 25 0:26 / /tmp/my\\040cgroups rw,relatime shared:9 - cgroup2 cgroup2 rw\n");
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].mount_point, "/tmp/my cgroups");
  EXPECT_EQ(mounts[0].version, Version::kV2);
}

TEST(CgroupHierarchy, DetectReadsControllersAtTheMountPoint) {
  char templ[] = "/tmp/ember-hier-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  std::string dir = templ;
  ASSERT_TRUE(WriteFileAtomic(dir + "/cgroup.controllers", "cpu memory pids\n"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/mountinfo",
                              "29 25 0:26 / " + dir + " rw shared:9 - cgroup2 cgroup2 rw\n"));
  auto h = DetectHierarchy(dir + "/mountinfo");
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->version, Version::kV2);
  EXPECT_EQ(h->v2_root, dir);

  auto missing = DetectHierarchy(dir + "/no-such-mountinfo");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("no-such-mountinfo"), std::string::npos);
  ASSERT_TRUE(RemoveTree(dir));
}

TEST(CgroupHierarchy, RealHostIsDetected) {
  // Whatever this machine is, detection must not fail on a machine that has the controllers.
  auto h = DetectHierarchy();
  if (!h && h.error().code() == ErrorCode::kUnavailable) GTEST_SKIP() << h.error().ToString();
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_FALSE(h->Roots().empty());
}

}  // namespace
}  // namespace ember::cgroup
