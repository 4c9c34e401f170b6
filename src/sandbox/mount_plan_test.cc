#include "sandbox/mount_plan.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <algorithm>

namespace ember::sandbox {
namespace {

SandboxSpec TestSpec() {
  SandboxSpec spec;
  spec.id = "sb-test";
  spec.lower_dirs = {"/run/ember/images/abc@100000"};
  spec.tmpfs_size = 32ULL << 20;
  spec.tmp_size = 16ULL << 20;
  spec.argv = {"/bin/true"};
  return spec;
}

const MountStep* Find(const MountPlan& plan, MountOp op, const std::string& target) {
  for (const auto& s : plan.steps) {
    if (s.op == op && s.target == target) return &s;
  }
  return nullptr;
}

size_t IndexOf(const MountPlan& plan, MountOp op, const std::string& target) {
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].op == op && plan.steps[i].target == target) return i;
  }
  return plan.steps.size();
}

TEST(MountPlanTest, WritableLayerIsASizeCappedTmpfsUnderTheOverlay) {
  MountPlan plan = BuildMountPlan(TestSpec(), "/stage");
  EXPECT_EQ(plan.root, "/stage/root");
  ASSERT_FALSE(plan.steps.empty());
  const MountStep& first = plan.steps.front();
  EXPECT_EQ(first.fstype, "tmpfs");
  EXPECT_EQ(first.target, "/stage");
  EXPECT_NE(first.data.find("size=33554432"), std::string::npos) << first.data;
  const MountStep* overlay = Find(plan, MountOp::kMount, "/stage/root");
  ASSERT_NE(overlay, nullptr);
  EXPECT_EQ(overlay->fstype, "overlay");
  EXPECT_EQ(overlay->data,
            "lowerdir=/run/ember/images/abc@100000,upperdir=/stage/upper,workdir=/stage/work");
  EXPECT_TRUE(overlay->flags & MS_NOSUID);
}

TEST(MountPlanTest, SeveralLowerDirsAreStackedTopFirst) {
  SandboxSpec spec = TestSpec();
  spec.lower_dirs = {"/layer/top", "/layer/image"};
  MountPlan plan = BuildMountPlan(spec, "/s");
  const MountStep* overlay = Find(plan, MountOp::kMount, "/s/root");
  ASSERT_NE(overlay, nullptr);
  EXPECT_EQ(overlay->data.rfind("lowerdir=/layer/top:/layer/image,", 0), 0u) << overlay->data;
}

TEST(MountPlanTest, ProcIsMountedBeforeItsMasks) {
  MountPlan plan = BuildMountPlan(TestSpec(), "/s");
  size_t proc = IndexOf(plan, MountOp::kMount, "/s/root/proc");
  ASSERT_LT(proc, plan.steps.size());
  for (const auto& file : MaskedProcFiles()) {
    size_t mask = IndexOf(plan, MountOp::kBindOptional, "/s/root" + file);
    ASSERT_LT(mask, plan.steps.size()) << file;
    EXPECT_GT(mask, proc);
    EXPECT_EQ(plan.steps[mask].source, "/dev/null");
  }
  for (const auto& path : ReadOnlyProcPaths()) {
    size_t ro = IndexOf(plan, MountOp::kRemountReadOnly, "/s/root" + path);
    ASSERT_LT(ro, plan.steps.size()) << path;
    EXPECT_TRUE(plan.steps[ro].flags & MS_NOSUID);
    EXPECT_TRUE(plan.steps[ro].flags & MS_NOEXEC);
  }
  for (const auto& dir : MaskedProcDirs()) {
    const MountStep* mask = Find(plan, MountOp::kMaskDir, "/s/root" + dir);
    ASSERT_NE(mask, nullptr) << dir;
    // An empty directory of the sandbox's own tmpfs, outside its root (read-only when applied).
    EXPECT_EQ(mask->source, std::string("/s") + kMaskedDir);
    EXPECT_TRUE(mask->flags & MS_BIND);
  }
  // /proc/kcore and /proc/sysrq-trigger are the ones every escape guide tries first.
  auto& files = MaskedProcFiles();
  EXPECT_NE(std::find(files.begin(), files.end(), "/proc/kcore"), files.end());
  EXPECT_NE(std::find(files.begin(), files.end(), "/proc/sysrq-trigger"), files.end());
}

TEST(MountPlanTest, DevHoldsOnlyTheMinimalDevicesAndEndsReadOnly) {
  MountPlan plan = BuildMountPlan(TestSpec(), "/s");
  std::vector<std::string> bound;
  for (const auto& s : plan.steps) {
    if (s.op == MountOp::kBindOptional && s.target.rfind("/s/root/dev/", 0) == 0) {
      bound.push_back(s.source);
    }
  }
  EXPECT_EQ(bound, (std::vector<std::string>{"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                             "/dev/urandom", "/dev/tty"}));
  const MountStep* pts = Find(plan, MountOp::kMount, "/s/root/dev/pts");
  ASSERT_NE(pts, nullptr);
  EXPECT_NE(pts->data.find("newinstance"), std::string::npos);
  size_t ro = IndexOf(plan, MountOp::kRemountReadOnly, "/s/root/dev");
  size_t shm = IndexOf(plan, MountOp::kBindNoExec, "/s/root/dev/shm");
  ASSERT_LT(shm, plan.steps.size());
  EXPECT_EQ(plan.steps[shm].source, std::string("/s") + kShmDir);
  ASSERT_LT(ro, plan.steps.size());
  EXPECT_GT(ro, shm);
  EXPECT_TRUE(plan.steps[ro].flags & MS_NODEV);
}

// /dev is a directory of the writable layer, bound before anything is created in it (so nothing
// lands in the image's /dev through the overlay), and every step that populates it comes after.
TEST(MountPlanTest, DevIsADirectoryOfTheWritableLayerBoundFirst) {
  MountPlan plan = BuildMountPlan(TestSpec(), "/s");
  size_t dir = IndexOf(plan, MountOp::kMkdir, std::string("/s") + kDevDir);
  size_t bind = IndexOf(plan, MountOp::kMount, "/s/root/dev");
  ASSERT_LT(bind, plan.steps.size());
  EXPECT_LT(dir, bind);
  EXPECT_EQ(plan.steps[bind].source, std::string("/s") + kDevDir);
  EXPECT_TRUE(plan.steps[bind].flags & MS_BIND);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].target.rfind("/s/root/dev/", 0) == 0) {
      EXPECT_GT(i, bind) << plan.steps[i].target;
    }
  }
}

// Each filesystem mounted costs kernel memory in every memory cgroup on the host (a shrinker per
// superblock): a sandbox mounts its tmpfs, overlay, proc, devpts (and /tmp when plain), no more.
TEST(MountPlanTest, ASandboxMountsFewFilesystems) {
  auto count = [](const MountPlan& plan) {
    std::vector<std::string> types;
    for (const auto& s : plan.steps) {
      if (s.op == MountOp::kMount && (s.flags & MS_BIND) == 0) types.push_back(s.fstype);
    }
    return types;
  };
  EXPECT_EQ(count(BuildMountPlan(TestSpec(), "/s")),
            (std::vector<std::string>{"tmpfs", "overlay", "proc", "devpts", "tmpfs"}));
  SandboxSpec template_spec = TestSpec();
  template_spec.fork_template = true;
  EXPECT_EQ(count(BuildMountPlan(template_spec, "/s")),
            (std::vector<std::string>{"tmpfs", "overlay", "proc", "devpts"}));
  EXPECT_EQ(count(BuildForkMountPlan(TestSpec())),
            (std::vector<std::string>{"tmpfs", "overlay", "proc", "devpts"}));
}

TEST(MountPlanTest, TmpIsItsOwnSizeCappedTmpfs) {
  MountPlan plan = BuildMountPlan(TestSpec(), "/s");
  const MountStep* tmp = Find(plan, MountOp::kMount, "/s/root/tmp");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(tmp->fstype, "tmpfs");
  EXPECT_NE(tmp->data.find("size=16777216"), std::string::npos);
  EXPECT_NE(tmp->data.find("mode=1777"), std::string::npos);
}

TEST(MountPlanTest, BindsComeLastWithTheirParentsCreatedAndAreReadOnly) {
  SandboxSpec spec = TestSpec();
  spec.binds = {{"/var/lib/ember/functions/f/code", "/opt/fn/code"}};
  MountPlan plan = BuildMountPlan(spec, "/stage");
  size_t parent = IndexOf(plan, MountOp::kMkdir, "/stage/root/opt");
  size_t leaf = IndexOf(plan, MountOp::kMkdir, "/stage/root/opt/fn/code");
  size_t bind = IndexOf(plan, MountOp::kBindReadOnly, "/stage/root/opt/fn/code");
  ASSERT_LT(bind, plan.steps.size());
  EXPECT_LT(parent, leaf);
  EXPECT_LT(leaf, bind);
  EXPECT_EQ(bind, plan.steps.size() - 1);
  EXPECT_EQ(plan.steps[bind].source, "/var/lib/ember/functions/f/code");
  EXPECT_EQ(plan.steps[bind].flags, static_cast<unsigned long>(MS_BIND | MS_REC));
}

TEST(SpecTest, ValidateNamesTheProblem) {
  SandboxSpec spec = TestSpec();
  EXPECT_TRUE(Validate(spec));
  auto bad = spec;
  bad.argv.clear();
  EXPECT_NE(Validate(bad).error().message().find("no command"), std::string::npos);
  bad = spec;
  bad.ids.host_base = 0;
  EXPECT_NE(Validate(bad).error().message().find("host root"), std::string::npos);
  bad = spec;
  bad.uid = 70000;
  EXPECT_NE(Validate(bad).error().message().find("outside"), std::string::npos);
  bad = spec;
  bad.workdir = "relative";
  EXPECT_NE(Validate(bad).error().message().find("absolute"), std::string::npos);
  bad = spec;
  bad.lower_dirs = {"/a:b"};
  EXPECT_FALSE(Validate(bad));
  bad = spec;
  bad.env = {"NOVALUE"};
  EXPECT_FALSE(Validate(bad));
  bad = spec;
  bad.binds = {{"/host", "/"}};
  EXPECT_NE(Validate(bad).error().message().find("bind mount '/host' -> '/'"), std::string::npos);
  bad.binds = {{"relative", "/x"}};
  EXPECT_FALSE(Validate(bad));
}

}  // namespace
}  // namespace ember::sandbox

namespace ember::sandbox {
namespace {

TEST(ForkMountPlanTest, TheTemplatesRootIsTheLowerLayerOfAFreshOverlay) {
  SandboxSpec spec = TestSpec();
  spec.binds = {{"/host/agent", "/.ember"}, {"/host/code", "/function"}};
  MountPlan plan = BuildForkMountPlan(spec);
  EXPECT_EQ(plan.staging, kForkStagingDir);
  EXPECT_EQ(plan.root, std::string(kForkStagingDir) + "/root");
  const MountStep* overlay = Find(plan, MountOp::kMount, plan.root);
  ASSERT_NE(overlay, nullptr);
  EXPECT_EQ(overlay->fstype, "overlay");
  EXPECT_EQ(overlay->data.rfind("lowerdir=/,", 0), 0u) << overlay->data;
  // The template's /tmp is part of its root (no mount of its own), so that one overlay covers it.
  EXPECT_EQ(Find(plan, MountOp::kMount, plan.root + "/tmp"), nullptr);
  SandboxSpec template_spec = TestSpec();
  template_spec.fork_template = true;
  EXPECT_EQ(Find(BuildMountPlan(template_spec, "/s"), MountOp::kMount, "/s/root/tmp"), nullptr);
}

TEST(ForkMountPlanTest, ProcIsFreshAndMaskedDevIsTheTemplatesWithPrivatePtsAndShm) {
  MountPlan plan = BuildForkMountPlan(TestSpec());
  const std::string& root = plan.root;
  const MountStep* proc = Find(plan, MountOp::kMount, root + "/proc");
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(proc->fstype, "proc");
  for (const auto& file : MaskedProcFiles()) {
    EXPECT_NE(Find(plan, MountOp::kBindOptional, root + file), nullptr) << file;
  }
  const MountStep* dev = Find(plan, MountOp::kMount, root + "/dev");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->source, "/dev");
  EXPECT_EQ(dev->flags & (MS_BIND | MS_REC), static_cast<unsigned long>(MS_BIND | MS_REC));
  EXPECT_LT(IndexOf(plan, MountOp::kMount, root + "/dev"),
            IndexOf(plan, MountOp::kMount, root + "/dev/pts"));
  EXPECT_LT(IndexOf(plan, MountOp::kMount, root + "/dev"),
            IndexOf(plan, MountOp::kBindNoExec, root + "/dev/shm"));
}

TEST(ForkMountPlanTest, BindsComeFromWhereTheTemplateSeesThem) {
  SandboxSpec spec = TestSpec();
  spec.binds = {{"/host/code", "/function"}};
  MountPlan plan = BuildForkMountPlan(spec);
  const MountStep* bind = Find(plan, MountOp::kBindReadOnly, plan.root + "/function");
  ASSERT_NE(bind, nullptr);
  EXPECT_EQ(bind->source, "/function");
  EXPECT_EQ(plan.steps.back().op, MountOp::kBindReadOnly);
}

TEST(ForkMountPlanTest, OnlyATemplateHasTheStagingDir) {
  SandboxSpec spec = TestSpec();
  MountPlan plain = BuildMountPlan(spec, "/stage");
  EXPECT_EQ(Find(plain, MountOp::kMkdir, plain.root + kForkStagingDir), nullptr);
  spec.fork_template = true;
  MountPlan forked = BuildMountPlan(spec, "/stage");
  EXPECT_NE(Find(forked, MountOp::kMkdir, forked.root + kForkStagingDir), nullptr);
}

}  // namespace
}  // namespace ember::sandbox
