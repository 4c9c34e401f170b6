#include "sandbox/fork_seccomp.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

#include "sandbox/seccomp_policy.h"

namespace ember::sandbox {
namespace {

// What `template` allows that strict does not (seccomp_policy.cc, kTemplateExtras and the
// unshare/setns rules): refused outright.
constexpr int kTemplateOnly[] = {SYS_mount,         SYS_umount2,    SYS_pivot_root, SYS_sethostname,
                                 SYS_mount_setattr, SYS_fsopen,     SYS_fsconfig,   SYS_fsmount,
                                 SYS_open_tree,     SYS_move_mount, SYS_unshare,    SYS_setns};
// The namespace flags `template` lets clone carry (it refuses user, network and cgroup ones).
constexpr uint32_t kTemplateCloneFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
// x32 syscall numbers have this bit; x86_64's never do. Whatever has it is left to the
// template's filter, which answers it as strict does (libseccomp's x32 check, with its
// exception for -1, is the same in both).
constexpr uint32_t kX32SyscallBit = 0x40000000;

sock_filter Statement(uint16_t code, uint32_t k) { return {code, 0, 0, k}; }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t if_true, uint8_t if_false) {
  return {code, if_true, if_false, k};
}

}  // namespace

BpfProgram TemplateToStrictFilter() {
  constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
  constexpr uint32_t kDeny = SECCOMP_RET_ERRNO | (kDeniedErrno & SECCOMP_RET_DATA);
  constexpr uint32_t kBadArch = SECCOMP_RET_ERRNO | (kBadArchErrno & SECCOMP_RET_DATA);
  std::vector<sock_filter> p;
  // Jump offsets are counted from the next instruction; the three returns close the program.
  p.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  p.push_back(Statement(BPF_RET | BPF_K, kBadArch));
  p.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  p.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 0, 1));
  p.push_back(Statement(BPF_RET | BPF_K, kAllow));
  // Each refused number jumps to the deny return, which follows the clone check.
  constexpr size_t kRefused = std::size(kTemplateOnly);
  for (size_t i = 0; i < kRefused; ++i) {
    // After this one: the rest of the list, then clone's jeq, load, jset and allow.
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(kTemplateOnly[i]),
                     static_cast<uint8_t>(kRefused - 1 - i + 4), 0));
  }
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 2));
  // The flags are clone's first argument; the namespace flags all sit in its low 32 bits.
  p.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  p.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, kTemplateCloneFlags, 1, 0));
  p.push_back(Statement(BPF_RET | BPF_K, kAllow));
  p.push_back(Statement(BPF_RET | BPF_K, kDeny));
  BpfProgram program;
  program.instructions = std::move(p);
  program.policy_hash = "template-to-strict";
  return program;
}

}  // namespace ember::sandbox
