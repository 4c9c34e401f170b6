#include "snapshot/thread_capture.h"

#include <elf.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace ember::snapshot {
namespace {

// Kernel-internal errnos of an interrupted syscall (include/linux/errno.h), never seen by user
// space except through ptrace.
constexpr int64_t kErestartSys = 512;
constexpr int64_t kErestartNoIntr = 513;
constexpr int64_t kErestartNoHand = 514;
constexpr int64_t kErestartRestartBlock = 516;

// struct ptrace_rseq_configuration of <linux/ptrace.h>, which clashes with <sys/ptrace.h>.
struct RseqConfiguration {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size;
  uint32_t signature;
  uint32_t flags;
  uint32_t pad;
};

// The xsave area is at most a few KiB (2432 bytes with AVX-512 here); 16 KiB leaves room for AMX.
constexpr size_t kMaxXsave = 16384;

std::string Thread(pid_t tid) { return "thread " + std::to_string(tid); }

}  // namespace

bool RewindInterruptedSyscall(user_regs_struct& regs) {
  if (static_cast<int64_t>(regs.orig_rax) < 0) return false;  // not stopped in a syscall
  switch (-static_cast<int64_t>(regs.rax)) {
    case kErestartSys:
    case kErestartNoIntr:
    case kErestartNoHand:
      regs.rax = regs.orig_rax;
      break;
    case kErestartRestartBlock:
      regs.rax = SYS_restart_syscall;
      break;
    default:
      return false;
  }
  regs.rip -= 2;  // `syscall` is two bytes (0f 05)
  return true;
}

Result<ThreadState> CaptureThread(pid_t host_tid, pid_t ns_tid, SyscallInjector& injector) {
  ThreadState t;
  t.tid = ns_tid;
  t.regs = injector.saved_regs();
  t.fs_base = t.regs.fs_base;
  t.gs_base = t.regs.gs_base;
  t.restart_syscall = RewindInterruptedSyscall(t.regs);
  t.sigmask = injector.saved_sigmask();

  t.xsave.resize(kMaxXsave);
  iovec iov{t.xsave.data(), t.xsave.size()};
  if (::ptrace(PTRACE_GETREGSET, host_tid, NT_X86_XSTATE, &iov) != 0) {
    return FailErrno("PTRACE_GETREGSET NT_X86_XSTATE " + Thread(host_tid));
  }
  t.xsave.resize(iov.iov_len);

  RseqConfiguration rseq{};
  if (::ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), host_tid, sizeof(rseq),
               &rseq) < 0) {
    return FailErrno("PTRACE_GET_RSEQ_CONFIGURATION " + Thread(host_tid));
  }
  t.rseq_addr = rseq.rseq_abi_pointer;
  t.rseq_len = rseq.rseq_abi_size;
  t.rseq_sig = rseq.signature;

  // get_robust_list works from the host for any thread we may ptrace.
  uint64_t head = 0;
  size_t len = 0;
  if (::syscall(SYS_get_robust_list, host_tid, &head, &len) != 0) {
    return FailErrno("get_robust_list " + Thread(host_tid));
  }
  t.robust_list = head;
  t.robust_list_len = len;

  // The alternate signal stack and clear_child_tid are only answered to the thread itself.
  EMBER_ASSIGN_OR_RETURN(int64_t rc, injector.Call(SYS_sigaltstack, {0, injector.scratch()}));
  if (rc != 0)
    return FailErrno("injected sigaltstack in " + Thread(host_tid), static_cast<int>(-rc));
  EMBER_ASSIGN_OR_RETURN(auto ss_bytes, injector.ReadScratch(sizeof(stack_t)));
  stack_t ss;
  std::memcpy(&ss, ss_bytes.data(), sizeof ss);
  t.altstack_sp = reinterpret_cast<uint64_t>(ss.ss_sp);
  t.altstack_size = ss.ss_size;
  t.altstack_flags = ss.ss_flags;

  EMBER_ASSIGN_OR_RETURN(rc, injector.Call(SYS_prctl, {PR_GET_TID_ADDRESS, injector.scratch()}));
  if (rc != 0) {
    return FailErrno("injected prctl(PR_GET_TID_ADDRESS) in " + Thread(host_tid),
                     static_cast<int>(-rc));
  }
  EMBER_ASSIGN_OR_RETURN(auto tid_addr, injector.ReadScratch(sizeof(uint64_t)));
  std::memcpy(&t.clear_child_tid, tid_addr.data(), sizeof(uint64_t));
  return t;
}

}  // namespace ember::snapshot
