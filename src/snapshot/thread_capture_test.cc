#include "snapshot/thread_capture.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>

#include "snapshot/syscall_injector.h"

namespace ember::snapshot {
namespace {

user_regs_struct StoppedIn(long nr, int64_t result) {
  user_regs_struct regs{};
  regs.orig_rax = static_cast<uint64_t>(nr);
  regs.rax = static_cast<uint64_t>(result);
  regs.rip = 0x401002;
  return regs;
}

TEST(RewindInterruptedSyscallTest, RestartFamilyIsRewound) {
  for (int64_t err : {-512, -513, -514}) {
    user_regs_struct regs = StoppedIn(SYS_read, err);
    EXPECT_TRUE(RewindInterruptedSyscall(regs)) << err;
    EXPECT_EQ(regs.rip, 0x401000u);
    EXPECT_EQ(regs.rax, static_cast<uint64_t>(SYS_read));
  }
}

TEST(RewindInterruptedSyscallTest, RestartBlockGoesThroughRestartSyscall) {
  user_regs_struct regs = StoppedIn(SYS_nanosleep, -516);
  EXPECT_TRUE(RewindInterruptedSyscall(regs));
  EXPECT_EQ(regs.rip, 0x401000u);
  EXPECT_EQ(regs.rax, static_cast<uint64_t>(SYS_restart_syscall));
}

TEST(RewindInterruptedSyscallTest, OtherStatesAreLeftAlone) {
  user_regs_struct done = StoppedIn(SYS_read, 5);  // a syscall that completed
  EXPECT_FALSE(RewindInterruptedSyscall(done));
  EXPECT_EQ(done.rip, 0x401002u);
  user_regs_struct eintr = StoppedIn(SYS_read, -4);
  EXPECT_FALSE(RewindInterruptedSyscall(eintr));
  user_regs_struct user_code = StoppedIn(-1, -512);  // orig_rax -1: not in a syscall
  EXPECT_FALSE(RewindInterruptedSyscall(user_code));
  EXPECT_EQ(user_code.rip, 0x401002u);
}

TEST(FindSyscallInstructionTest, FindsFirstSyscall) {
  std::vector<uint8_t> vdso = {0x90, 0x0f, 0x0b, 0xb8, 0xe4, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3};
  auto insn = FindSyscallInstruction(vdso, 0x7fff0000);
  ASSERT_TRUE(insn) << insn.error().ToString();
  EXPECT_EQ(*insn, 0x7fff0008u);
  EXPECT_FALSE(FindSyscallInstruction({0x0f, 0x0b, 0x05}, 0x1000));
}

}  // namespace
}  // namespace ember::snapshot
