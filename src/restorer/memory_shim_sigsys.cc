// The process's own SIGSYS action, kept by the memory shim (memory_shim.h): rt_sigaction(SIGSYS)
// from the process is served from it, and SIGSYS that is not the shim's goes to it.
#include <asm/unistd.h>
#include <linux/errno.h>

#include "restorer/memory_shim_internal.h"
#include "restorer/syscall.h"

namespace ember::restorer::shim {
namespace {

void ReraiseWithDefaultAction(SigsysInfo* info) {
  const KernelSigaction default_action{};  // SIG_DFL
  ShimSyscall(__NR_rt_sigaction, kSigsys, reinterpret_cast<long>(&default_action), 0, 8);
  const long tgid = RawSyscall(__NR_getpid);
  const long tid = RawSyscall(__NR_gettid);
  // Same siginfo (a core dump shows the original cause); sending to oneself allows any code.
  if (IsError(
          RawSyscall(__NR_rt_tgsigqueueinfo, tgid, tid, kSigsys, reinterpret_cast<long>(info)))) {
    RawSyscall(__NR_tgkill, tgid, tid, kSigsys);
  }
  // SIGSYS is blocked until the handler returns; sigreturn unblocks it and it is delivered.
}

// The process's SIGSYS action is shared by its threads; a spin lock is enough (held for a few
// instructions, only inside the handler, where every signal is blocked).
void LockProcessAction() {
  while (__atomic_exchange_n(&g_shim.action_lock, 1, __ATOMIC_ACQUIRE) != 0) {
    __builtin_ia32_pause();
  }
}
void UnlockProcessAction() { __atomic_store_n(&g_shim.action_lock, 0, __ATOMIC_RELEASE); }

}  // namespace

long EmulateSigaction(uint64_t act, uint64_t oact, uint64_t sigsetsize) {
  if (sigsetsize != sizeof(uint64_t)) return -EINVAL;
  // A bad oact fails with EFAULT before anything changes (the real call writes the shim's
  // action there; it is overwritten below). A bad act is read directly: see the header.
  if (oact != 0) {
    const long r = ShimSyscall(__NR_rt_sigaction, kSigsys, 0, static_cast<long>(oact), 8);
    if (IsError(r)) return r;
  }
  KernelSigaction incoming{};
  if (act != 0) {
    // NOLINTNEXTLINE(performance-no-int-to-ptr)
    incoming = *reinterpret_cast<const KernelSigaction*>(act);
    incoming.mask &= ~kUnblockable;  // as the kernel does
  }
  LockProcessAction();
  const KernelSigaction previous = g_shim.process_action;
  if (act != 0) g_shim.process_action = incoming;
  UnlockProcessAction();
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  if (oact != 0) *reinterpret_cast<KernelSigaction*>(oact) = previous;
  return 0;
}

void ForwardForeignSigsys(SigsysInfo* info, KernelUcontext* context) {
  LockProcessAction();
  const KernelSigaction action = g_shim.process_action;
  if ((action.flags & kSaResethand) != 0) g_shim.process_action.handler = nullptr;
  UnlockProcessAction();
  const auto disposition = reinterpret_cast<uintptr_t>(action.handler);
  if (disposition == kSigDfl || (disposition == kSigIgn && info->code == kSysSeccomp)) {
    ReraiseWithDefaultAction(info);  // a forced seccomp SIGSYS kills even when ignored
    return;
  }
  if (disposition == kSigIgn) return;
  // The mask the kernel would have set for that handler (the shim's blocks everything), but
  // with SIGSYS open: a trapped call in that handler (free() reaching madvise) must reach the
  // shim, not kill the process. A second foreign SIGSYS then nests, as with SA_NODEFER.
  const uint64_t mask = (context->sigmask | action.mask) & ~kSigsysBit;
  RawSyscall(__NR_rt_sigprocmask, kSigSetmask, reinterpret_cast<long>(&mask), 0, 8);
  // A one-argument handler ignores the other two (x86-64 calling convention).
  action.handler(kSigsys, info, context);
}

}  // namespace ember::restorer::shim
