// The memory shim's kernel layouts and state (memory_shim.cc): the kernel's, not glibc's, as
// the shim runs without libc. Not for use outside the shim.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "restorer/memory_shim.h"

// The shim's syscall instruction (see memory_shim.cc). Hidden: its address is then taken
// RIP-relative, not through the GOT; ld 2.40 cannot relax a GOT load of a symbol above 2 GiB
// in the static non-PIE restorer (it tries an imm32).
extern "C" {
__attribute__((visibility("hidden"))) long ember_shim_syscall(long nr, long a0, long a1, long a2,
                                                              long a3, long a4);
}

namespace ember::restorer::shim {

inline constexpr int kSigsys = 31;
inline constexpr int kSysSeccomp = 1;  // si_code of a seccomp SIGSYS
inline constexpr unsigned long kSaSiginfo = 4;
inline constexpr unsigned long kSaResethand = 0x80000000;
inline constexpr unsigned long kSaRestorer = 0x04000000;
inline constexpr uintptr_t kSigDfl = 0;
inline constexpr uintptr_t kSigIgn = 1;
inline constexpr int kSigSetmask = 2;
inline constexpr uint64_t kSigsysBit = 1ULL << (kSigsys - 1);
inline constexpr uint64_t kPageSize = 4096;
inline constexpr const char* kMapsPath = "/proc/self/maps";

// The kernel's x86-64 sigaction (not glibc's: no 128-byte sigset).
using SigactionHandler = void (*)(int, void*, void*);
struct KernelSigaction {
  SigactionHandler handler;  // or SIG_DFL (0), SIG_IGN (1)
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

// The SIGSYS part of the kernel's siginfo.
struct SigsysInfo {
  int signo;
  int errno_value;  // SECCOMP_RET_DATA of the filter that trapped
  int code;
  int pad;
  uint64_t call_addr;
  int syscall;
  uint32_t arch;
};
static_assert(offsetof(SigsysInfo, syscall) == 24 && offsetof(SigsysInfo, arch) == 28);

// The kernel's x86-64 ucontext: general registers at offset 40 in sigcontext order, the
// signal mask that sigreturn restores after them.
struct KernelUcontext {
  uint64_t flags;
  uint64_t link;
  uint64_t stack[3];
  uint64_t gregs[32];  // struct sigcontext
  uint64_t sigmask;
};
inline constexpr int kR8 = 0, kR10 = 2, kRdi = 8, kRsi = 9, kRdx = 12, kRax = 13;
static_assert(offsetof(KernelUcontext, gregs) == 40 && offsetof(KernelUcontext, sigmask) == 296);

struct ShimState {
  uint32_t dev_major;
  uint32_t dev_minor;
  uint64_t inode;
  const FileOrigin* origins;  // MemoryShimConfig::file_origins
  int origin_count;
  bool installed;
  uint64_t traps;
  KernelSigaction process_action;  // the process's SIGSYS action at install (see the header)
};

// Zero-initialised (bss): the restorer runs no constructors. Hidden for the same reason as
// above.
__attribute__((visibility("hidden"))) extern ShimState g_shim;

// A madvise or mremap the filter lets through.
inline long ShimSyscall(long nr, long a0 = 0, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0) {
  return ember_shim_syscall(nr, a0, a1, a2, a3, a4);
}

}  // namespace ember::restorer::shim
