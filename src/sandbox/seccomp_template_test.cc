// The fork-boot template's seccomp policy: strict plus exactly what sandboxing a child takes.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>

#include "sandbox/seccomp.h"
#include "sandbox/seccomp_eval.h"

namespace ember::sandbox {
namespace {

constexpr uint32_t kAllow = SCMP_ACT_ALLOW;
constexpr uint32_t kEperm = SCMP_ACT_ERRNO(EPERM);

uint32_t EvalTemplate(int nr, std::initializer_list<uint64_t> args = {}) {
  static const BpfProgram program = [] {
    auto compiled = CompileSeccomp(SeccompPolicy::kTemplate);
    if (!compiled) ADD_FAILURE() << compiled.error().ToString();
    return compiled ? *compiled : BpfProgram{};
  }();
  seccomp_data data{};
  data.nr = nr;
  data.arch = AUDIT_ARCH_X86_64;
  size_t i = 0;
  for (uint64_t a : args) data.args[i++] = a;
  return EvaluateSeccomp(program.instructions, data).value_or(0xdeadbeef);
}

TEST(SeccompTemplateTest, AddsTheSandboxingSyscallsToStrict) {
  for (int nr : {SYS_mount, SYS_umount2, SYS_pivot_root, SYS_sethostname, SYS_mount_setattr,
                 SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_open_tree, SYS_move_mount}) {
    EXPECT_EQ(EvalTemplate(nr), kAllow) << nr;
  }
  // fspick reconfigures an existing superblock: nothing a spawn needs.
  EXPECT_EQ(EvalTemplate(SYS_fspick), kEperm);
  EXPECT_EQ(EvalTemplate(SYS_getpid), kAllow);
  EXPECT_EQ(EvalTemplate(SYS_keyctl), kEperm);
  EXPECT_EQ(EvalTemplate(SYS_bpf), kEperm);
  EXPECT_EQ(EvalTemplate(SYS_init_module), kEperm);
}

TEST(SeccompTemplateTest, ClonesChildrenIntoPidMountIpcUtsNamespacesOnly) {
  uint64_t spawn = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD | SIGCHLD;
  EXPECT_EQ(EvalTemplate(SYS_clone, {spawn}), kAllow);
  EXPECT_EQ(EvalTemplate(SYS_clone, {SIGCHLD}), kAllow);
  for (uint64_t ns : {CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWCGROUP}) {
    EXPECT_EQ(EvalTemplate(SYS_clone, {spawn | ns}), kEperm) << std::hex << ns;
  }
}

TEST(SeccompTemplateTest, UnshareAndSetnsAreNarrowed) {
  EXPECT_EQ(EvalTemplate(SYS_unshare, {CLONE_NEWCGROUP}), kAllow);
  for (uint64_t flags :
       {CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWCGROUP | CLONE_NEWNET}) {
    EXPECT_EQ(EvalTemplate(SYS_unshare, {flags}), kEperm) << std::hex << flags;
  }
  // The pooled network namespace, and the mount, ipc and uts namespaces made ahead (fork_shell.h).
  for (uint64_t type : {CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS}) {
    EXPECT_EQ(EvalTemplate(SYS_setns, {3, type}), kAllow) << std::hex << type;
  }
  // nstype 0 would let any namespace type through (a pidfd's included).
  for (uint64_t type : {uint64_t{0}, uint64_t{CLONE_NEWUSER}, uint64_t{CLONE_NEWPID},
                        uint64_t{CLONE_NEWCGROUP}, uint64_t{CLONE_NEWNS | CLONE_NEWIPC}}) {
    EXPECT_EQ(EvalTemplate(SYS_setns, {3, type}), kEperm) << std::hex << type;
  }
}

TEST(SeccompTemplateTest, DeniedListStaysConsistent) {
  const PolicyTable& table = GetPolicyTable(SeccompPolicy::kTemplate);
  EXPECT_EQ(PolicyName(SeccompPolicy::kTemplate), "template");
  for (const auto& name : table.denied) {
    for (const auto& rule : table.rules) EXPECT_NE(rule.name, name) << "both allowed and denied";
  }
  EXPECT_NE(RenderPolicy(table), RenderPolicy(GetPolicyTable(SeccompPolicy::kStrict)));
}

}  // namespace
}  // namespace ember::sandbox
