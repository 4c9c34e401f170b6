#include "sandbox/fork_shell.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <string>

namespace ember::sandbox {
namespace {

bool Everything(const char* /*path*/) { return true; }
bool NoScsi(const char* path) { return std::string(path) != "/proc/scsi"; }

TEST(ForkProcPlanTest, TheChildsProcStepsNameTheShellsRootAsSlash) {
  ForkProcPlan plan = BuildForkProcPlan(&Everything);
  EXPECT_EQ(plan.all.root, "/");
  ASSERT_FALSE(plan.all.steps.empty());
  EXPECT_EQ(plan.all.steps[0].op, MountOp::kMount);
  EXPECT_EQ(plan.all.steps[0].fstype, "proc");
  EXPECT_EQ(plan.all.steps[0].target, "/proc");
  for (const MountStep& step : plan.all.steps) {
    SCOPED_TRACE(step.target);
    EXPECT_EQ(step.target.rfind("/proc", 0), 0u) << "every step is under /proc";
    EXPECT_EQ(step.target.find(kForkStagingDir), std::string::npos);
  }
}

TEST(ForkProcPlanTest, ThePartsAreTheWholePlanInItsOrder) {
  ForkProcPlan plan = BuildForkProcPlan(&NoScsi);
  const auto& all = plan.all.steps;
  ASSERT_EQ(all.size(),
            1 + plan.files.steps.size() + plan.masked_dirs.size() + plan.read_only.steps.size());
  size_t i = 1;
  for (const MountStep& step : plan.files.steps) {
    EXPECT_EQ(step.op, MountOp::kBindOptional);
    EXPECT_EQ(step.source, "/dev/null");
    EXPECT_EQ(all[i++].target, step.target);
  }
  for (const std::string& dir : plan.masked_dirs) {
    EXPECT_EQ(all[i].op, MountOp::kMaskDir);
    EXPECT_EQ(all[i++].target, dir);
  }
  for (const MountStep& step : plan.read_only.steps) {
    EXPECT_EQ(all[i].op, step.op);
    EXPECT_EQ(all[i].source, step.source);
    EXPECT_EQ(all[i++].target, step.target);
    if (step.op == MountOp::kBindOptional) EXPECT_EQ(step.source, step.target);
  }
  EXPECT_EQ(plan.masked_dirs, (std::vector<std::string>{"/proc/acpi", "/proc/driver"}));
  EXPECT_FALSE(plan.files.steps.empty());
  EXPECT_FALSE(plan.read_only.steps.empty());
  EXPECT_EQ(plan.files.root, "/");
  EXPECT_EQ(plan.read_only.root, "/");
}

TEST(ForkProcPlanTest, TheShellGetsNewMountIpcAndUtsNamespacesAndSharesMemoryAndFds) {
  const unsigned long flags = NamespaceShellCloneFlags();
  for (unsigned long flag :
       {CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_VM, CLONE_VFORK, CLONE_FILES}) {
    EXPECT_EQ(flags & flag, flag) << std::hex << flag;
  }
  // Never these: a shared fs struct would let the pivot move the template's root; the others are
  // not the shell's to make.
  for (unsigned long flag :
       {CLONE_FS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWCGROUP}) {
    EXPECT_EQ(flags & flag, 0u) << std::hex << flag;
  }
  EXPECT_EQ(flags & 0xff, 0u) << "no exit signal: the template reaps the shell itself";
}

}  // namespace
}  // namespace ember::sandbox
