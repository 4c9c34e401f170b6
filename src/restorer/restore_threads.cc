// Threads, per-thread state, credentials and the jump.
//
// Every recorded thread but the leader is created with clone3(set_tid = {tid}) on a small stack
// in the restorer's range. Each restores what only the thread itself can set (fs/gs base, rseq,
// robust list, clear_child_tid; capabilities and uid/gid are per thread in the kernel, and so is
// a seccomp filter installed without TSYNC), counts itself ready and waits at a gate. The leader
// creates the thread-directed POSIX timers once all exist, drops its own privileges, writes the
// success report, opens the gate and jumps; each thread jumps through rt_sigreturn into the frame
// the host built (registers, xsave, signal mask, alternate stack: restore_plan_frames.h). So no
// restored code runs before every thread is complete, and none runs with ember's privileges.
#include <asm/prctl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include "restorer/restorer.h"

// long EmberCloneThread(clone_args* args, size_t size, void (*fn)(const void*), const void* arg)
// clone3 returns on the new stack in the child; fn and arg ride in r8/r9, which the syscall
// keeps (it clobbers only rcx and r11) and the child inherits.
__asm__(R"(
  .text
  .globl EmberCloneThread
  .type EmberCloneThread, @function
EmberCloneThread:
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax
  syscall
  test %rax, %rax
  jnz 1f
  xor %ebp, %ebp
  mov %r9, %rdi
  and $-16, %rsp
  call *%r8
  ud2
1:
  ret
)");
extern "C" long EmberCloneThread(struct clone_args* args, unsigned long size,
                                 void (*fn)(const void*), const void* arg);

namespace ember::restorer {
namespace {

using snapshot::PlanThread;

constexpr int kCapLast = 63;

int g_ready = 0;  // threads past their setup, waiting at the gate
int g_gate = 0;   // 1: jump

[[noreturn]] void Sigreturn(uint64_t frame) {
  __asm__ volatile(
      "mov %0, %%rsp\n"
      "mov $15, %%eax\n"  // rt_sigreturn
      "syscall\n"
      "ud2\n"
      :
      : "r"(frame)
      : "memory");
  __builtin_unreachable();
}

void RestoreThreadState(const PlanThread& t) {
  uint64_t tid = static_cast<uint64_t>(t.tid);
  Check(RawSyscall(SYS_arch_prctl, ARCH_SET_FS, static_cast<long>(t.fs_base)),
        snapshot::kStageThreadState, tid);
  if (t.gs_base != 0) {
    Check(RawSyscall(SYS_arch_prctl, ARCH_SET_GS, static_cast<long>(t.gs_base)),
          snapshot::kStageThreadState, tid);
  }
  RawSyscall(SYS_set_tid_address, static_cast<long>(t.clear_child_tid));
  if (t.robust_list != 0) {
    Check(RawSyscall(SYS_set_robust_list, static_cast<long>(t.robust_list),
                     static_cast<long>(t.robust_list_len)),
          snapshot::kStageThreadState, tid);
  }
  if (t.rseq_addr != 0) {
    Check(RawSyscall(SYS_rseq, static_cast<long>(t.rseq_addr), t.rseq_len, 0, t.rseq_sig),
          snapshot::kStageThreadState, tid);
  }
}

void ThreadMain(const void* arg) {
  const PlanThread& t = *static_cast<const PlanThread*>(arg);
  RestoreThreadState(t);
  DropPrivileges(true, true);
  __atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
  RawSyscall(SYS_futex, reinterpret_cast<long>(&g_ready), FUTEX_WAKE_PRIVATE, 1);
  while (__atomic_load_n(&g_gate, __ATOMIC_SEQ_CST) == 0) {
    RawSyscall(SYS_futex, reinterpret_cast<long>(&g_gate), FUTEX_WAIT_PRIVATE, 0, 0);
  }
  Sigreturn(snapshot::kPlanAddress + t.frame_offset);
}

}  // namespace

void DropPrivileges(bool install_seccomp, bool dumpable) {
  const PlanHeader& p = *g_ctx.plan;
  // The bounding set first: dropping from it needs CAP_SETPCAP, which the uid switch may take.
  for (int cap = 0; cap <= kCapLast; ++cap) {
    long present = RawSyscall(SYS_prctl, PR_CAPBSET_READ, cap, 0, 0, 0);
    if (present != 1) continue;  // not in the set, or past the kernel's last capability
    Check(RawSyscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0), snapshot::kStageCapabilities,
          static_cast<uint64_t>(cap));
  }
  Check(RawSyscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
        snapshot::kStageCapabilities, 0);
  Check(RawSyscall(SYS_setresgid, p.gid, p.gid, p.gid), snapshot::kStageCredentials, p.gid);
  Check(RawSyscall(SYS_setresuid, p.uid, p.uid, p.uid), snapshot::kStageCredentials, p.uid);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  Check(RawSyscall(SYS_capset, reinterpret_cast<long>(&header), reinterpret_cast<long>(data)),
        snapshot::kStageCapabilities, 0);
  // A uid change may make the process undumpable (root-owned /proc/PID files); the restored
  // process was dumpable. The helpers are made undumpable whatever the uid change did.
  RawSyscall(SYS_prctl, PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0);
  Check(RawSyscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), snapshot::kStageNoNewPrivs, 0);
  if (install_seccomp && p.seccomp_len > 0) {
    sock_fprog program{static_cast<unsigned short>(p.seccomp_len),
                       const_cast<sock_filter*>(PlanTable<sock_filter>(p.seccomp_offset))};
    Check(RawSyscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(&program)),
          snapshot::kStageSeccomp, 0);
  }
}

void StartThreads() {
  const PlanHeader& p = *g_ctx.plan;
  const PlanThread* threads = PlanTable<PlanThread>(p.threads_offset);
  uint32_t others = p.thread_count - 1;
  if (others == 0) return;
  uint64_t stacks = snapshot::kThreadStacksAddress;
  Check(RawSyscall(SYS_mmap, static_cast<long>(stacks),
                   static_cast<long>(others * snapshot::kThreadStackBytes), 3 /* RW */,
                   0x22 | 0x10 /* MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED */, -1, 0),
        snapshot::kStageCloneThread, 0);
  for (uint32_t i = 1; i < p.thread_count; ++i) {
    int32_t tid = threads[i].tid;
    struct clone_args args {};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args.stack = stacks + (i - 1) * snapshot::kThreadStackBytes;
    args.stack_size = snapshot::kThreadStackBytes;
    args.set_tid = reinterpret_cast<uint64_t>(&tid);
    args.set_tid_size = 1;
    Check(EmberCloneThread(&args, sizeof args, ThreadMain, &threads[i]),
          snapshot::kStageCloneThread, static_cast<uint64_t>(tid));
  }
  for (;;) {
    int ready = __atomic_load_n(&g_ready, __ATOMIC_SEQ_CST);
    if (ready == static_cast<int>(others)) break;
    RawSyscall(SYS_futex, reinterpret_cast<long>(&g_ready), FUTEX_WAIT_PRIVATE, ready, 0);
  }
}

[[noreturn]] void ResumeLeader() {
  const PlanHeader& p = *g_ctx.plan;
  const PlanThread& leader = PlanTable<PlanThread>(p.threads_offset)[0];
  RestoreThreadState(leader);
  RawSyscall(SYS_close, g_ctx.image_fd);
  // Privileges go before the success report, so that "success" means the whole process is
  // locked down; the sandbox's filter must allow what follows: write, close, futex,
  // rt_sigreturn.
  DropPrivileges(true, true);
  ReportSuccess();
  __atomic_store_n(&g_gate, 1, __ATOMIC_SEQ_CST);
  RawSyscall(SYS_futex, reinterpret_cast<long>(&g_gate), FUTEX_WAKE_PRIVATE, 0x7fffffff);
  Sigreturn(snapshot::kPlanAddress + leader.frame_offset);
}

}  // namespace ember::restorer
