// The stack a fork-booted child runs under (template, then TemplateToStrictFilter on top) must
// answer every syscall exactly as strict does.
#include "sandbox/fork_seccomp.h"

#include <gtest/gtest.h>
#include <linux/audit.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cstdint>
#include <vector>

#include "sandbox/seccomp_eval.h"
#include "sandbox/seccomp_policy.h"

namespace ember::sandbox {
namespace {

BpfProgram Compiled(SeccompPolicy policy) {
  auto compiled = CompileSeccomp(policy);
  if (!compiled) ADD_FAILURE() << compiled.error().ToString();
  return compiled ? *compiled : BpfProgram{};
}

// The kernel runs every filter of the stack, most recent first, and keeps the first answer of
// the most restrictive action (seccomp_run_filters).
uint32_t Stacked(uint32_t below, uint32_t above) {
  auto action = [](uint32_t ret) { return static_cast<int32_t>(ret & SECCOMP_RET_ACTION_FULL); };
  return action(below) < action(above) ? below : above;
}

uint32_t Eval(const BpfProgram& program, const seccomp_data& data) {
  return EvaluateSeccomp(program.instructions, data).value_or(0xdeadbeef);
}

TEST(ForkSeccompTest, TheChildsStackAnswersEverySyscallAsStrict) {
  const BpfProgram strict = Compiled(SeccompPolicy::kStrict);
  const BpfProgram fork_template = Compiled(SeccompPolicy::kTemplate);
  const BpfProgram delta = TemplateToStrictFilter();
  ASSERT_FALSE(strict.instructions.empty());
  ASSERT_FALSE(fork_template.instructions.empty());
  // The first argument carries the flags of clone, unshare, socket, personality…; the second
  // setns's namespace type and ioctl's request.
  const uint64_t spawn = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
  std::vector<uint64_t> first = {0,
                                 SIGCHLD,
                                 CLONE_VM | CLONE_VFORK | SIGCHLD,
                                 spawn | SIGCHLD,
                                 uint64_t{1} << 32 | CLONE_NEWNS,
                                 uint64_t{1} << 32,
                                 0xffffffff,
                                 AF_UNIX,
                                 AF_INET,
                                 AF_NETLINK};
  for (uint64_t ns : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                      CLONE_NEWNET, CLONE_NEWCGROUP}) {
    first.push_back(ns);
    first.push_back(ns | SIGCHLD);
  }
  const std::vector<uint64_t> second = {
      0, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWUSER, SOCK_STREAM};
  std::vector<uint32_t> numbers;
  for (uint32_t nr = 0; nr < 512; ++nr) numbers.push_back(nr);
  for (uint32_t nr : {0u, 1u, 56u, 165u, 272u, 308u, 512u, 547u})
    numbers.push_back(0x40000000 | nr);
  // Just below the x32 range, and the numbers glibc's syscall(-1) and friends produce.
  for (uint32_t nr : {0x3fffffffu, 0x7fffffffu, 0xfffffffeu, 0xffffffffu}) numbers.push_back(nr);
  size_t checked = 0, refused = 0;
  for (uint32_t arch :
       {uint32_t{AUDIT_ARCH_X86_64}, uint32_t{AUDIT_ARCH_I386}, uint32_t{AUDIT_ARCH_AARCH64}}) {
    for (uint32_t nr : numbers) {
      for (uint64_t a0 : first) {
        for (uint64_t a1 : second) {
          seccomp_data data{};
          data.arch = arch;
          data.nr = static_cast<int>(nr);
          data.args[0] = a0;
          data.args[1] = a1;
          uint32_t want = Eval(strict, data);
          uint32_t got = Stacked(Eval(fork_template, data), Eval(delta, data));
          ASSERT_EQ(got, want) << "want 0x" << std::hex << want << " got 0x" << got << " arch 0x"
                               << std::hex << arch << " nr 0x" << nr << " args 0x" << a0 << " 0x"
                               << a1;
          ++checked;
          if (want != SCMP_ACT_ALLOW) ++refused;
        }
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(checked, refused);
}

TEST(ForkSeccompTest, TheTemplatesExtrasAreRefusedWithStrictsErrno) {
  const BpfProgram delta = TemplateToStrictFilter();
  seccomp_data data{};
  data.arch = AUDIT_ARCH_X86_64;
  for (int nr : {SYS_mount, SYS_pivot_root, SYS_move_mount, SYS_unshare, SYS_setns}) {
    data.nr = nr;
    EXPECT_EQ(Eval(delta, data), SCMP_ACT_ERRNO(kDeniedErrno)) << nr;
  }
  data.nr = SYS_clone;
  data.args[0] = CLONE_NEWPID | SIGCHLD;
  EXPECT_EQ(Eval(delta, data), SCMP_ACT_ERRNO(kDeniedErrno));
  data.args[0] = SIGCHLD;
  EXPECT_EQ(Eval(delta, data), SCMP_ACT_ALLOW);
  // Small: that is the point of it.
  EXPECT_LT(delta.instructions.size(), 32u);
}

}  // namespace
}  // namespace ember::sandbox
