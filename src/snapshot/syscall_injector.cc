#include "snapshot/syscall_injector.h"

#include <sys/ptrace.h>
#include <unistd.h>

#include <string>

#include "snapshot/ptrace_session.h"

namespace ember::snapshot {
namespace {

std::string Thread(pid_t tid) { return "thread " + std::to_string(tid); }

}  // namespace

Result<uint64_t> FindSyscallInstruction(const std::vector<uint8_t>& vdso, uint64_t vdso_start) {
  for (size_t i = 0; i + 1 < vdso.size(); ++i) {
    // Any 0f 05 decodes as `syscall` when execution starts there, even if it is the tail of a
    // longer instruction; only that one instruction ever runs.
    if (vdso[i] == 0x0f && vdso[i + 1] == 0x05) return vdso_start + i;
  }
  return Fail(ErrorCode::kUnsupported,
              "no syscall instruction in the [vdso]: cannot inject syscalls to read the "
              "process's signal handlers");
}

Result<SyscallInjector> SyscallInjector::Attach(pid_t tid, int mem_fd, uint64_t syscall_insn) {
  SyscallInjector injector;
  injector.tid_ = tid;
  injector.mem_fd_ = mem_fd;
  injector.syscall_insn_ = syscall_insn;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &injector.regs_) != 0) {
    return FailErrno("PTRACE_GETREGS " + Thread(tid));
  }
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &injector.sigmask_) != 0) {
    return FailErrno("PTRACE_GETSIGMASK " + Thread(tid));
  }
  // 16-byte aligned, below the 128-byte red zone a leaf function may be using.
  injector.scratch_ = (injector.regs_.rsp - 128 - kScratchSize) & ~uint64_t{15};
  ssize_t n = ::pread(mem_fd, injector.scratch_saved_.data(), kScratchSize,
                      static_cast<off_t>(injector.scratch_));
  if (n != static_cast<ssize_t>(kScratchSize)) {
    return FailErrno(
        "read the stack below rsp of " + Thread(tid) + " (scratch for injected syscalls)",
        n < 0 ? errno : EIO);
  }
  uint64_t all = ~uint64_t{0};
  if (::ptrace(PTRACE_SETSIGMASK, tid, sizeof(uint64_t), &all) != 0) {
    return FailErrno("PTRACE_SETSIGMASK " + Thread(tid));
  }
  injector.attached_ = true;
  return injector;
}

SyscallInjector::SyscallInjector(SyscallInjector&& other) noexcept
    : tid_(other.tid_),
      mem_fd_(other.mem_fd_),
      syscall_insn_(other.syscall_insn_),
      regs_(other.regs_),
      sigmask_(other.sigmask_),
      scratch_(other.scratch_),
      scratch_saved_(other.scratch_saved_),
      attached_(other.attached_) {
  other.attached_ = false;
}

SyscallInjector::~SyscallInjector() { (void)Finish(); }

Result<int64_t> SyscallInjector::Call(long nr, std::array<uint64_t, 6> args) {
  if (!attached_) return Fail(ErrorCode::kInternal, "syscall injector used after Finish");
  user_regs_struct regs = regs_;
  regs.rip = syscall_insn_;
  regs.rax = static_cast<uint64_t>(nr);
  regs.orig_rax = ~uint64_t{0};  // not in a syscall: no restart logic on the way out
  regs.rdi = args[0];
  regs.rsi = args[1];
  regs.rdx = args[2];
  regs.r10 = args[3];
  regs.r8 = args[4];
  regs.r9 = args[5];
  std::string what = "injected syscall " + std::to_string(nr) + " in " + Thread(tid_);
  if (::ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0)
    return FailErrno("set registers for " + what);
  // Two syscall stops: entry, then exit with the result in rax.
  for (int stop = 0; stop < 2; ++stop) {
    if (::ptrace(PTRACE_SYSCALL, tid_, nullptr, nullptr) != 0) return FailErrno("run " + what);
    EMBER_TRY_CTX(WaitForStop(tid_, /*want_syscall_stop=*/true), what);
  }
  if (::ptrace(PTRACE_GETREGS, tid_, nullptr, &regs) != 0)
    return FailErrno("read result of " + what);
  if (regs.rip != syscall_insn_ + 2) {
    return Fail(ErrorCode::kInternal, what + " stopped at an unexpected address");
  }
  return static_cast<int64_t>(regs.rax);
}

Result<std::vector<uint8_t>> SyscallInjector::ReadScratch(size_t size) const {
  if (size > kScratchSize) return Fail(ErrorCode::kInternal, "scratch read beyond its size");
  std::vector<uint8_t> out(size);
  ssize_t n = ::pread(mem_fd_, out.data(), size, static_cast<off_t>(scratch_));
  if (n != static_cast<ssize_t>(size)) {
    return FailErrno("read scratch of " + Thread(tid_), n < 0 ? errno : EIO);
  }
  return out;
}

Status SyscallInjector::Finish() {
  if (!attached_) return Ok();
  attached_ = false;
  Status result = Ok();
  ssize_t n = ::pwrite(mem_fd_, scratch_saved_.data(), kScratchSize, static_cast<off_t>(scratch_));
  if (n != static_cast<ssize_t>(kScratchSize)) {
    result = FailErrno("restore the stack bytes below rsp of " + Thread(tid_), n < 0 ? errno : EIO);
  }
  if (::ptrace(PTRACE_SETREGS, tid_, nullptr, &regs_) != 0 && result) {
    result = FailErrno("restore registers of " + Thread(tid_));
  }
  if (::ptrace(PTRACE_SETSIGMASK, tid_, sizeof(uint64_t), &sigmask_) != 0 && result) {
    result = FailErrno("restore signal mask of " + Thread(tid_));
  }
  return result;
}

}  // namespace ember::snapshot
