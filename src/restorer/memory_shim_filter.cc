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
  // A conditional jump whose targets are patched later (JumpTrueTo/JumpFalseTo). Returns its
  // index.
  int Branch(uint16_t code, uint32_t k) {
    Jump(code, k, 0, 0);
    return n - 1;
  }
  // Points the true (false) branch of the jump at `at` to the next instruction emitted.
  void JumpTrueHere(int at) { Patch(at, true); }
  void JumpFalseHere(int at) { Patch(at, false); }
  void Patch(int at, bool taken) {
    if (overflow || at < 0 || at >= n) return;
    const int offset = n - at - 1;
    if (offset > 255) {
      overflow = true;  // never with kMaxShimRanges/kMaxShimCodeRanges: short jumps only
      return;
    }
    (taken ? out[at].jt : out[at].jf) = static_cast<uint8_t>(offset);
  }
};

constexpr uint32_t kTrap = SECCOMP_RET_TRAP | kShimTrapData;

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

// Jumps (BPF_JA, any distance) to `in_target` if lo <= instruction_pointer < hi; falls
// through to the next block otherwise. Returns the index of that JA, to patch.
int EmitCodeRangeCheck(Emitter& e, const AddressRange& range) {
  const uint64_t lo = range.start, hi = range.end;
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpHi);          // 0
  e.Jump(BPF_JMP | BPF_JGT | BPF_K, Hi(lo), 3, 0);  // 1: ip_hi > lo_hi: above lo
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(lo), 0, 8);  // 2: ip_hi < lo_hi: next
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpLo);          // 3
  e.Jump(BPF_JMP | BPF_JGE | BPF_K, Lo(lo), 0, 6);  // 4: ip < lo: next
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpHi);          // 5
  e.Jump(BPF_JMP | BPF_JGT | BPF_K, Hi(hi), 4, 0);  // 6: ip_hi > hi_hi: next
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(hi), 0, 2);  // 7: ip_hi < hi_hi: in
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpLo);          // 8
  e.Jump(BPF_JMP | BPF_JGE | BPF_K, Lo(hi), 1, 0);  // 9: ip >= hi: next
  e.Jump(BPF_JMP | BPF_JA, 0, 0, 0);                // 10: in
  return e.n - 1;
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

bool ValidRanges(const AddressRange* ranges, int count, int most) {
  if (count < 0 || count > most) return false;
  for (int i = 0; i < count; ++i) {
    if (ranges[i].start >= ranges[i].end) return false;
    if (i > 0 && ranges[i].start < ranges[i - 1].end) return false;
  }
  return true;
}

int BuildMemoryShimFilter(uint64_t shim_syscall_return, const AddressRange* image_ranges,
                          int image_count, const AddressRange* code_ranges, int code_count,
                          sock_filter* out, int capacity) {
  if (image_count == 0 || !ValidRanges(image_ranges, image_count, kMaxShimRanges) ||
      !ValidRanges(code_ranges, code_count, kMaxShimCodeRanges)) {
    return -EINVAL;
  }
  Emitter e{out, capacity};

  // Only x86-64 numbers mean madvise/mremap here; i386 and x32 entry is the sandbox
  // allowlist's business.
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
  const int is_mremap = e.Branch(BPF_JMP | BPF_JEQ | BPF_K, __NR_mremap);
  e.JumpFalseHere(is_mremap);
  const int is_madvise = e.Branch(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise);
  e.JumpFalseHere(is_madvise);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

  // madvise: only the advices of kShimAdvices (the kernel takes the advice as an int: only its
  // low half counts).
  e.JumpTrueHere(is_madvise);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, ArgLo(2));
  int advice_hits[sizeof(kShimAdvices) / sizeof(kShimAdvices[0])];
  int advice_count = 0;
  for (const int advice : kShimAdvices) {
    advice_hits[advice_count] = e.Branch(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(advice));
    e.JumpFalseHere(advice_hits[advice_count++]);
  }
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  e.JumpTrueHere(is_mremap);
  for (int i = 0; i < advice_count; ++i) e.JumpTrueHere(advice_hits[i]);

  // The shim's own calls go through.
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpLo);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Lo(shim_syscall_return), 0, 3);
  e.Stmt(BPF_LD | BPF_W | BPF_ABS, kIpHi);
  e.Jump(BPF_JMP | BPF_JEQ | BPF_K, Hi(shim_syscall_return), 0, 1);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

  // Only calls made from the restored process's code (see the header).
  if (code_count > 0) {
    int in_code[kMaxShimCodeRanges];
    for (int i = 0; i < code_count; ++i) in_code[i] = EmitCodeRangeCheck(e, code_ranges[i]);
    e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    for (int i = 0; i < code_count; ++i) {
      if (!e.overflow) e.out[in_code[i]].k = static_cast<uint32_t>(e.n - in_code[i] - 1);
    }
  }

  EmitCallRange(e);
  for (int i = 0; i < image_count; ++i) EmitRangeCheck(e, image_ranges[i]);
  e.Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  if (e.overflow) return -ENOSPC;
  return e.n;
}

void AddMergedRange(AddressRange* ranges, int* count, uint64_t start, uint64_t end) {
  AddMergedRange(ranges, count, kMaxShimRanges, start, end);
}

void AddMergedRange(AddressRange* ranges, int* count, int capacity, uint64_t start, uint64_t end) {
  if (*count > 0 && ranges[*count - 1].end == start) {
    ranges[*count - 1].end = end;
    return;
  }
  if (*count < capacity) {
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
