// Runs read-only syscalls inside a stopped thread, for the state only the task itself can ask
// the kernel about (signal handlers, alternate stack, clear_child_tid, brk, timer values).
//
// No code of ours ever runs in the tracee. The thread's own registers are pointed at a
// `syscall` instruction that already exists in its address space (in the [vdso]), with the
// syscall number and arguments in the registers; PTRACE_SYSCALL runs exactly that one
// instruction to its syscall-exit stop, and the original registers are put back. orig_rax is
// set to -1 so the kernel does not take the injected call for an interrupted syscall to restart.
// Results the kernel writes to memory land in a scratch area below the thread's red zone
// (rsp - 128 - size); its bytes are saved first and written back at the end.
//
// All signals are blocked (PTRACE_SETSIGMASK) while syscalls are injected, so no handler runs
// between the two stops; the original mask is restored by Finish. Only syscalls that read state
// are injected: nothing about the process changes.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <array>
#include <cstdint>
#include <vector>

#include "base/error.h"

namespace ember::snapshot {

// Finds a `syscall` instruction (0f 05) in the tracee's [vdso] (the kernel's own fallback
// paths contain several). `vdso` is the bytes of [vdso], which starts at `vdso_start`.
Result<uint64_t> FindSyscallInstruction(const std::vector<uint8_t>& vdso, uint64_t vdso_start);

class SyscallInjector {
 public:
  static constexpr size_t kScratchSize = 256;

  // `tid` must be in a ptrace stop of a PtraceSession; `mem_fd` is that session's /proc/PID/mem.
  static Result<SyscallInjector> Attach(pid_t tid, int mem_fd, uint64_t syscall_insn);

  SyscallInjector(const SyscallInjector&) = delete;
  SyscallInjector& operator=(const SyscallInjector&) = delete;
  SyscallInjector(SyscallInjector&& other) noexcept;
  SyscallInjector& operator=(SyscallInjector&&) = delete;
  ~SyscallInjector();  // Finish(), errors ignored

  // The thread's registers and signal mask as they were before anything was injected.
  const user_regs_struct& saved_regs() const { return regs_; }
  uint64_t saved_sigmask() const { return sigmask_; }

  // Runs syscall `nr` and returns its raw result (a negative errno on failure).
  Result<int64_t> Call(long nr, std::array<uint64_t, 6> args = {});
  // Address of kScratchSize bytes of the tracee to pass as an output pointer.
  uint64_t scratch() const { return scratch_; }
  Result<std::vector<uint8_t>> ReadScratch(size_t size) const;

  // Puts back registers, signal mask and the scratch bytes.
  Status Finish();

 private:
  SyscallInjector() = default;

  pid_t tid_ = -1;
  int mem_fd_ = -1;
  uint64_t syscall_insn_ = 0;
  user_regs_struct regs_{};
  uint64_t sigmask_ = 0;
  uint64_t scratch_ = 0;
  std::array<uint8_t, kScratchSize> scratch_saved_{};
  bool attached_ = false;
};

}  // namespace ember::snapshot
