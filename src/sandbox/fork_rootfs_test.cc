#include "sandbox/fork_rootfs.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <algorithm>
#include <string>

namespace ember::sandbox {
namespace {

SandboxSpec TemplateSpec() {
  SandboxSpec spec;
  spec.id = "t-test";
  spec.tmpfs_size = 32ULL << 20;
  spec.tmp_size = 16ULL << 20;
  spec.argv = {"/.ember/ember-agent"};
  return spec;
}

bool Everything(const char* /*path*/) { return true; }
bool NoKcoreNorAsound(const char* path) {
  return std::string(path) != "/proc/kcore" && std::string(path) != "/proc/asound";
}

const MountStep* Find(const MountPlan& plan, MountOp op, const std::string& target) {
  for (const auto& s : plan.steps) {
    if (s.op == op && s.target == target) return &s;
  }
  return nullptr;
}

bool HasDir(const std::vector<ForkRootfsPlan::Dir>& dirs, const std::string& path, mode_t mode) {
  return std::any_of(dirs.begin(), dirs.end(),
                     [&](const auto& d) { return d.path == path && d.mode == mode; });
}

TEST(ForkRootfsPlanTest, TheLayerIsASizeCappedTmpfsUnderAnOverlayOfTheTemplatesRoot) {
  ForkRootfsPlan plan = BuildForkRootfsPlan(TemplateSpec());
  EXPECT_EQ(plan.layer_options, "mode=0755,size=33554432");
  EXPECT_EQ(plan.lower, "/");
  EXPECT_TRUE(HasDir(plan.layer_dirs, "upper", 0755));
  EXPECT_TRUE(HasDir(plan.layer_dirs, "work", 0755));
  EXPECT_TRUE(HasDir(plan.layer_dirs, "root", 0755));
  // The empty dir that masks /proc directories is read-only; /dev/shm is world-writable, sticky.
  EXPECT_TRUE(HasDir(plan.layer_dirs, "masked", 0555));
  EXPECT_TRUE(HasDir(plan.layer_dirs, "shm", 01777));
}

TEST(ForkRootfsPlanTest, DevGetsAFreshPtyInstanceAndItsOwnShm) {
  ForkRootfsPlan plan = BuildForkRootfsPlan(TemplateSpec());
  EXPECT_NE(plan.devpts_options.find("newinstance"), std::string::npos);
  EXPECT_NE(plan.devpts_options.find("ptmxmode=0666"), std::string::npos);
  EXPECT_TRUE(HasDir(plan.root_dirs, "dev", 0755));
  EXPECT_TRUE(HasDir(plan.dev_dirs, "dev/pts", 0755));
  EXPECT_TRUE(HasDir(plan.dev_dirs, "dev/shm", 01777));
}

TEST(ForkRootfsPlanTest, BindTargetsGetTheirParentsFirst) {
  SandboxSpec spec = TemplateSpec();
  spec.binds = {{"/host/agent", "/.ember"}, {"/host/code", "/opt/fn/code"}};
  ForkRootfsPlan plan = BuildForkRootfsPlan(spec);
  EXPECT_EQ(plan.bind_targets, (std::vector<std::string>{"/.ember", "/opt/fn/code"}));
  auto index = [&](const std::string& path) {
    auto it = std::find_if(plan.root_dirs.begin(), plan.root_dirs.end(),
                           [&](const auto& d) { return d.path == path; });
    return static_cast<size_t>(it - plan.root_dirs.begin());
  };
  ASSERT_LT(index("opt/fn/code"), plan.root_dirs.size());
  EXPECT_LT(index("opt"), index("opt/fn"));
  EXPECT_LT(index("opt/fn"), index("opt/fn/code"));
  EXPECT_LT(index(".ember"), plan.root_dirs.size());
}

TEST(ForkChildMountsTest, OnlyAFreshMaskedProcIsLeftToTheChild) {
  MountPlan plan = BuildForkChildMounts(&Everything);
  EXPECT_EQ(plan.staging, kForkStagingDir);
  EXPECT_EQ(plan.root, std::string(kForkStagingDir) + "/root");
  ASSERT_FALSE(plan.steps.empty());
  const MountStep& proc = plan.steps.front();
  EXPECT_EQ(proc.fstype, "proc");
  EXPECT_EQ(proc.target, plan.root + "/proc");
  EXPECT_EQ(proc.flags, static_cast<unsigned long>(MS_NOSUID | MS_NODEV | MS_NOEXEC));
  for (const auto& step : plan.steps) {
    EXPECT_EQ(step.target.rfind(plan.root + "/proc", 0), 0u) << step.target;
    EXPECT_NE(step.fstype, "tmpfs");
    EXPECT_NE(step.fstype, "overlay");
  }
  for (const auto& file : MaskedProcFiles()) {
    const MountStep* mask = Find(plan, MountOp::kBindOptional, plan.root + file);
    ASSERT_NE(mask, nullptr) << file;
    EXPECT_EQ(mask->source, "/dev/null");
  }
  for (const auto& dir : MaskedProcDirs()) {
    const MountStep* mask = Find(plan, MountOp::kMaskDir, plan.root + dir);
    ASSERT_NE(mask, nullptr) << dir;
    EXPECT_EQ(mask->source, plan.staging + kMaskedDir);
  }
  for (const auto& path : ReadOnlyProcPaths()) {
    EXPECT_NE(Find(plan, MountOp::kRemountReadOnly, plan.root + path), nullptr) << path;
  }
}

TEST(ForkChildMountsTest, PathsThisKernelLacksAreNotMasked) {
  MountPlan all = BuildForkChildMounts(&Everything);
  MountPlan some = BuildForkChildMounts(&NoKcoreNorAsound);
  EXPECT_EQ(Find(some, MountOp::kBindOptional, some.root + "/proc/kcore"), nullptr);
  EXPECT_EQ(Find(some, MountOp::kBindOptional, some.root + "/proc/asound"), nullptr);
  EXPECT_EQ(Find(some, MountOp::kRemountReadOnly, some.root + "/proc/asound"), nullptr);
  EXPECT_NE(Find(some, MountOp::kBindOptional, some.root + "/proc/keys"), nullptr);
  EXPECT_EQ(some.steps.size(), all.steps.size() - 3);
}

}  // namespace
}  // namespace ember::sandbox
