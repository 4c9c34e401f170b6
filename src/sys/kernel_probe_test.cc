#include "sys/kernel_probe.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mounts.h"

namespace ember::sys {
namespace {

KernelFeatures Sample() {
  KernelFeatures k;
  k.key = {"6.18.44-test", "0b9c1f9e-0000-4000-8000-000000000001"};
  k.probe_ms = 12.5;
  k.cgroup_layout = "hybrid";
  k.cgroup_version = 1;
  k.cgroup_controllers = {{"memory", "v1 /sys/fs/cgroup/memory"},
                          {"pids", "v1 /sys/fs/cgroup/pids"}};
  k.values = {{"pid_max", 32768}, {"nofile_hard", 20000}};
  k.features = {{"user_namespaces", true, true, "created one", ""},
                {"idmapped_mounts", false, false, "mount_setattr: EINVAL", "owned by nobody"},
                {"seccomp_filter", false, true, "seccomp: EINVAL \"quoted\"", ""}};
  return k;
}

class KernelProbeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-probe-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  std::string dir_;
};

TEST(KernelProbeTest, SerializeRoundTrip) {
  KernelFeatures k = Sample();
  auto parsed = ParseFeatures(SerializeFeatures(k));
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(*parsed, k);
  EXPECT_TRUE(parsed->Has("user_namespaces"));
  EXPECT_FALSE(parsed->Has("idmapped_mounts"));
  EXPECT_FALSE(parsed->Has("no_such_feature"));
  EXPECT_EQ(parsed->Value("pid_max"), 32768u);
  ASSERT_EQ(parsed->MissingRequired().size(), 1u);
  EXPECT_EQ(parsed->MissingRequired()[0]->name, "seccomp_filter");
}

TEST(KernelProbeTest, ParseRejectsGarbage) {
  std::string good = SerializeFeatures(Sample());
  for (const std::string& bad :
       {std::string(""), std::string("{"), std::string("[]"), std::string("{\"format\": 1}"),
        good.substr(0, good.size() / 2), std::string("{\"format\": 99}")}) {
    auto parsed = ParseFeatures(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), ErrorCode::kCorrupt) << bad;
  }
  std::string wrong_type = good;
  wrong_type.replace(wrong_type.find("\"ok\": true"), 10, "\"ok\": \"yes\"");
  EXPECT_FALSE(ParseFeatures(wrong_type));
}

TEST_F(KernelProbeCacheTest, CacheKeyedByReleaseAndBootId) {
  KernelFeatures k = Sample();
  std::string path = ProbeCachePath(dir_);
  ASSERT_TRUE(WriteFileAtomic(path, SerializeFeatures(k)));
  auto same = LoadProbeCache(path, k.key);
  ASSERT_TRUE(same) << same.error().ToString();
  EXPECT_EQ(*same, k);
  EXPECT_FALSE(LoadProbeCache(path, {k.key.release, "another-boot"}));
  EXPECT_FALSE(LoadProbeCache(path, {"6.1.0", k.key.boot_id}));
  ASSERT_TRUE(WriteFileAtomic(path, "{ not json"));
  auto corrupt = LoadProbeCache(path, k.key);
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(LoadProbeCache(dir_ + "/missing.json", k.key));
}

TEST(KernelProbeTest, CurrentKey) {
  auto key = CurrentProbeKey();
  ASSERT_TRUE(key) << key.error().ToString();
  EXPECT_FALSE(key->release.empty());
  EXPECT_EQ(key->boot_id.size(), 36u) << key->boot_id;
}

// Runs the probe for real: on the machines ember targets these all work.
TEST_F(KernelProbeCacheTest, RealProbeOnThisHost) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts EROFS and idmaps it";
  KernelFeatures k = ProbeKernel(dir_);
  for (const auto& f : k.features) {
    std::printf("  %-20s %-4s %s%s%s\n", f.name.c_str(), f.ok ? "ok" : "FAIL", f.detail.c_str(),
                f.fallback.empty() ? "" : " -> ", f.fallback.c_str());
  }
  std::printf("  probe took %.1f ms\n", k.probe_ms);
  for (std::string_view name :
       {feature::kUserNamespaces, feature::kPidfd, feature::kSeccomp, feature::kErofsFileBacked,
        feature::kIdmappedMounts, feature::kOverlayInUserns, feature::kCgroups}) {
    const FeatureResult* f = k.Find(name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_TRUE(f->ok) << name << ": " << f->detail;
  }
  EXPECT_TRUE(k.MissingRequired().empty());
  EXPECT_GT(k.Value("pid_max"), 0u);
  EXPECT_GT(k.Value("nofile_hard"), 0u);
  // The scratch files went under the test's own run dir: only the cache may remain there.
  EXPECT_TRUE(MountPointsUnder(dir_).empty()) << "probe left mounts behind";
  auto after = ListDirectory(dir_);
  ASSERT_TRUE(after);
  for (const auto& name : *after) {
    EXPECT_EQ(name.rfind("ember-probe-", 0), std::string::npos)
        << "probe left " << dir_ << "/" << name;
  }
}

TEST_F(KernelProbeCacheTest, ProbeWritesCacheAndReusesIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const KernelFeatures& k = Probe(dir_);
  auto cached = LoadProbeCache(ProbeCachePath(dir_), k.key);
  ASSERT_TRUE(cached) << cached.error().ToString();
  EXPECT_EQ(*cached, k);
  EXPECT_EQ(&Probe(dir_ + "/elsewhere"), &k) << "second call must come from memory";
}

}  // namespace
}  // namespace ember::sys
