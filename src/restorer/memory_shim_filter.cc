#include "restorer/memory_shim_filter.h"

#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/errno.h>
#include <linux/seccomp.h>
#include <stddef.h>

namespace ember::restorer {
namespace {

// Scratch words of the filter: the call's range as two 32-bit halves each.
constexpr uint32_t kStartLo = 0, kStartHi = 1, kEndLo = 2, kEndHi = 3;

constexpr uint32_t ArgLo(int i) {
  return static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * static_cast<size_t>(i));
}
constexpr uint32_t ArgHi(int i) { return ArgLo(i) + 4; }
constexpr uint32_t kIpLo = offsetof(seccomp_data, instruction_pointer);
constexpr uint32_t kIpHi = kIpLo + 4;

uint32_t Lo(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t Hi(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

struct Emitter {
  sock_filter* out;
  int capacity;
  int n = 0;
  bool overflow = false;

  void Stmt(uint16_t code, uint32_t k) { Jump(code, k, 0, 0); }
  void Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
    if (n >= capacity) {
      overflow = true;
      return;
    }
    out[n++] = sock_filter{code, jt, jf, k};
  }
};

constexpr uint32_t kTrap = SECCOMP_RET_TRAP | kShimTrapData;
constexpr uint32_t kSigsysNumber = 31;

// [start, end) of the call (args 0 and 1) into the scratch words. The 64-bit sum is built from
// 32-bit halves with an explicit carry; a sum that wraps around only makes the check miss a call
// the kernel rejects anyway (EINVAL) before it touches memory.
void EmitCallRange(Emitter& e) {
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgLo(0));
  e.Stmt(BPF_ST, kStartLo);
  e.Stmt(BPF_MISC | BPF_TAX, 0);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgLo(1));
  e.Stmt(BPF_ALU | BPF_ADD | BPF_X, 0);
  e.Stmt(BPF_ST, kEndLo);
  e.Jump(BPF_JMP | BPF_JGE | BPF_X, 0, 2, 0);  // end_lo >= start_lo: no carry
  e.Stmt(BPF_LDX | BPF_IMM, 1);
  e.Jump(BPF_JMP | BPF_JA, 1, 0, 0);
  e.Stmt(BPF_LDX | BPF_IMM, 0);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgHi(0));
  e.Stmt(BPF_ST, kStartHi);
  e.Stmt(BPF_ALU | BPF_ADD | BPF_X, 0);
  e.Stmt(BPF_MISC | BPF_TAX, 0);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgHi(1));
  e.Stmt(BPF_ALU | BPF_ADD | BPF_X, 0);
  e.Stmt(BPF_ST, kEndHi);
}

// Traps if the call's [start, end) overlaps [lo, hi): start < hi && end > lo, in 64 bits.
void EmitRangeCheck(Emitter& e, const AddressRange& range) {
  const uint64_t lo = range.start, hi = range.end;
  e.Stmt(BPF_LD | BPF_MEM, kStartHi);               // 0
  e.Jump(BPF_JMP | BPF_JGT | BPF_K, Hi(hi), 9, 0);  // 1: start_hi > hi_hi: next
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(hi), 0, 2);  // 2: start_hi < hi_hi: check end
  e.Stmt(BPF_LD | BPF_MEM, kStartLo);               // 3
  e.Jump(BPF_JMP | BPF_JGE | BPF_K, Lo(hi), 6, 0);  // 4: start >= hi: next
  e.Stmt(BPF_LD | BPF_MEM, kEndHi);                 // 5
  e.Jump(BPF_JMP | BPF_JGT | BPF_K, Hi(lo), 3, 0);  // 6: end_hi > lo_hi: trap
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(lo), 0, 3);  // 7: end_hi < lo_hi: next
  e.Stmt(BPF_LD | BPF_MEM, kEndLo);                 // 8
  e.Jump(BPF_JMP | BPF_JGT | BPF_K, Lo(lo), 0, 1);  // 9: end > lo: trap
  e.Stmt(BPF_RET | BPF_K, kTrap);                   // 10
}

}  // namespace

int BuildMemoryShimFilter(uint64_t shim_syscall_return, const AddressRange* ranges, int count,
                          sock_filter* out, int capacity) {
  if (count <= 0 || count > kMaxShimRanges) return -EINVAL;
  for (int i = 0; i < count; ++i) {
    if (ranges[i].start >= ranges[i].end) return -EINVAL;
    if (i > 0 && ranges[i].start < ranges[i - 1].end) return -EINVAL;
  }
  constexpr int kAdviceCount = sizeof(kShimAdvices) / sizeof(kShimAdvices[0]);
  Emitter e{out, capacity};

  // Only x86-64 numbers mean madvise/mremap here; i386 and x32 entry is the sandbox
  // allowlist's business.
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
  constexpr auto kA = static_cast<uint8_t>(kAdviceCount);
  // mremap: straight to the caller check below the advice block.
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_mremap, 12 + kA, 0);
  // rt_sigaction(SIGSYS, ...) from anywhere but the shim: trap (the shim keeps the process's
  // action for it). The kernel takes the signal number as an int: only its low half counts.
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigaction, 0, 8);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgLo(0));
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, kSigsysNumber, 0, 5);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpLo);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Lo(shim_syscall_return), 0, 2);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpHi);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(shim_syscall_return), 1, 0);
  e.Stmt(BPF_RET | BPF_K, kTrap);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  // madvise with an advice of kShimAdvices (an int as well).
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 1 + kA);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgLo(2));
  for (int i = 0; i < kAdviceCount; ++i) {
    e.Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(kShimAdvices[i]),
           static_cast<uint8_t>(kAdviceCount - i), 0);
  }
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

  // The shim's own calls go through.
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpLo);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Lo(shim_syscall_return), 0, 3);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpHi);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(shim_syscall_return), 0, 1);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

  EmitCallRange(e);
  for (int i = 0; i < count; ++i) EmitRangeCheck(e, ranges[i]);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  if (e.overflow) return -ENOSPC;
  return e.n;
}

void AddMergedRange(AddressRange* ranges, int* count, uint64_t start, uint64_t end) {
  if (*count > 0 && ranges[*count - 1].end == start) {
    ranges[*count - 1].end = end;
    return;
  }
  if (*count < kMaxShimRanges) {
    ranges[(*count)++] = AddressRange{start, end};
    return;
  }
  // Full: close the smallest gap, counting the new range's gap to the last one.
  int best = *count - 1;  // gap between ranges[best] and its successor (the new range)
  uint64_t best_gap = start - ranges[*count - 1].end;
  for (int i = 0; i + 1 < *count; ++i) {
    const uint64_t gap = ranges[i + 1].start - ranges[i].end;
    if (gap < best_gap) {
      best_gap = gap;
      best = i;
    }
  }
  if (best == *count - 1) {
    ranges[best].end = end;
    return;
  }
  ranges[best].end = ranges[best + 1].end;
  for (int i = best + 1; i + 1 < *count; ++i) ranges[i] = ranges[i + 1];
  ranges[*count - 1] = AddressRange{start, end};
}

}  // namespace ember::restorer
