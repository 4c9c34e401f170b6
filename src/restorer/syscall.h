// Raw system calls for the restorer's freestanding code: it runs with no libc (the restorer
// unmaps everything but itself), so there is no errno and no wrapper. Each call returns the
// kernel's value: >= 0 on success, -errno on failure.
//
// Kept in one place so that the code which must issue its syscalls from a known address range
// (memory_shim.h: the seccomp filter lets only the shim's own madvise/mremap through) can put
// the `syscall` instruction where it needs it.
#pragma once

#include <stdint.h>

namespace ember::restorer {

inline long RawSyscall(long nr, long a0 = 0, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0,
                       long a5 = 0) {
  long ret;
  register long r10 __asm__("r10") = a3;
  register long r8 __asm__("r8") = a4;
  register long r9 __asm__("r9") = a5;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

inline bool IsError(long ret) { return ret < 0 && ret > -4096; }

// Freestanding replacements for what the compiler may still emit calls to (struct copies,
// zero-initialisation) even with -fno-builtin; defined once in memory.cc.
extern "C" void* memcpy(void* dst, const void* src, unsigned long n);
extern "C" void* memset(void* dst, int c, unsigned long n);
extern "C" int memcmp(const void* a, const void* b, unsigned long n);

}  // namespace ember::restorer
