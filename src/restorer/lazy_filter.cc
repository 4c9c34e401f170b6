// BuildLazyFileFilter: the seccomp program of on-demand I/O reconnection (lazy_files.h).
//
//   arch == x86-64 ?            else ERRNO(ENOSYS)
//   nr < x32 bit ?              else ERRNO(ENOSYS)
//   binary tree over the nrs of lazy_syscalls.h; a leaf compares a few nrs, each hit jumps to
//   the block of its argument pattern; no hit: ALLOW
//   blocks, one per distinct (use|replace args, kind):
//     per fd argument k: A = low 32 bits of args[k]; outside [min fd, max fd] -> next argument;
//                        == any lazy fd -> USER_NOTIF
//     mmap: MAP_ANONYMOUS set -> ALLOW before the fd check
//     close_range: per lazy fd f: first <= f <= last -> USER_NOTIF
//     ALLOW
//
// Conditional jumps carry 8-bit offsets, so every far jump goes through BPF_JA (32-bit): the
// program has no size limit of its own but BPF_MAXINSNS.
#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>

#include "restorer/lazy_files.h"
#include "restorer/lazy_syscalls.h"

namespace ember::restorer {
namespace {

constexpr uint32_t kX32SyscallBit = 0x40000000;
constexpr uint32_t kOffsetNr = offsetof(seccomp_data, nr);
constexpr uint32_t kOffsetArch = offsetof(seccomp_data, arch);

// x86-64 is little-endian: the low half of args[k] comes first.
constexpr uint32_t ArgLow(int k) {
  return static_cast<uint32_t>(offsetof(seccomp_data, args)) + 8u * static_cast<uint32_t>(k);
}

class Emitter {
 public:
  Emitter(sock_filter* out, int capacity) : out_(out), capacity_(capacity) {}

  int Emit(uint16_t code, uint32_t k, uint8_t jt = 0, uint8_t jf = 0) {
    if (size_ < capacity_) out_[size_] = sock_filter{code, jt, jf, k};
    return size_++;
  }
  int Load(uint32_t offset) { return Emit(BPF_LD | BPF_W | BPF_ABS, offset); }
  int Return(uint32_t action) { return Emit(BPF_RET | BPF_K, action); }
  // An unconditional jump whose target is set later with Land().
  int JumpForward() { return Emit(BPF_JMP | BPF_JA, 0); }
  // Makes the jump at `from` land on the next instruction emitted.
  void Land(int from) { LandAt(from, size_); }
  void LandAt(int from, int target) {
    if (from < capacity_) out_[from].k = static_cast<uint32_t>(target - from - 1);
  }
  int size() const { return size_; }

 private:
  sock_filter* out_;
  int capacity_;
  int size_ = 0;
};

struct Fds {
  const LazyFile* files;
  int count;
  uint32_t min, max;
};

// Argument patterns: the fd arguments of a syscall (use and replace alike: the filter traps
// both) and its kind.
struct Pattern {
  uint8_t args;
  LazySyscallKind kind;
};
constexpr int kMaxPatterns = 16;
constexpr int kMaxTable = 128;  // entries of kLazySyscalls

int PatternOf(const LazySyscall& s, Pattern* patterns, int* pattern_count) {
  const Pattern p{static_cast<uint8_t>(s.use_args | s.replace_args), s.kind};
  for (int i = 0; i < *pattern_count; ++i) {
    if (patterns[i].args == p.args && patterns[i].kind == p.kind) return i;
  }
  if (*pattern_count == kMaxPatterns) return -1;
  patterns[*pattern_count] = p;
  return (*pattern_count)++;
}

// Jumps from the syscall tree to a pattern block, patched once the blocks are placed.
struct Fixup {
  int at;
  int pattern;
};

void EmitTree(Emitter& e, const int* pattern_of, int lo, int hi, Fixup* fixups, int* fixup_count) {
  constexpr int kLeafSize = 4;
  if (hi - lo <= kLeafSize) {
    for (int i = lo; i < hi; ++i) {
      e.Emit(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(kLazySyscalls[i].nr), 0, 1);
      fixups[(*fixup_count)++] = Fixup{e.JumpForward(), pattern_of[i]};
    }
    e.Return(SECCOMP_RET_ALLOW);
    return;
  }
  const int mid = lo + (hi - lo) / 2;
  e.Emit(BPF_JMP | BPF_JGE | BPF_K, static_cast<uint32_t>(kLazySyscalls[mid].nr), 0, 1);
  const int to_right = e.JumpForward();
  EmitTree(e, pattern_of, lo, mid, fixups, fixup_count);
  e.Land(to_right);
  EmitTree(e, pattern_of, mid, hi, fixups, fixup_count);
}

void EmitFdArgCheck(Emitter& e, const Fds& fds, int arg) {
  e.Load(ArgLow(arg));
  e.Emit(BPF_JMP | BPF_JGT | BPF_K, fds.max, 0, 1);
  const int above = e.JumpForward();
  e.Emit(BPF_JMP | BPF_JGE | BPF_K, fds.min, 1, 0);
  const int below = e.JumpForward();
  for (int i = 0; i < fds.count; ++i) {
    e.Emit(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(fds.files[i].fd), 0, 1);
    e.Return(SECCOMP_RET_USER_NOTIF);
  }
  e.Land(above);
  e.Land(below);
}

void EmitBlock(Emitter& e, const Fds& fds, const Pattern& p) {
  if (p.kind == LazySyscallKind::kCloseRange) {
    for (int i = 0; i < fds.count; ++i) {
      const auto fd = static_cast<uint32_t>(fds.files[i].fd);
      e.Load(ArgLow(0));
      e.Emit(BPF_JMP | BPF_JGT | BPF_K, fd, 3, 0);  // first > fd: next fd
      e.Load(ArgLow(1));
      e.Emit(BPF_JMP | BPF_JGE | BPF_K, fd, 0, 1);
      e.Return(SECCOMP_RET_USER_NOTIF);
    }
    e.Return(SECCOMP_RET_ALLOW);
    return;
  }
  if (p.kind == LazySyscallKind::kMmap) {
    e.Load(ArgLow(3));
    e.Emit(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS, 0, 1);
    e.Return(SECCOMP_RET_ALLOW);
  }
  for (int arg = 0; arg < 6; ++arg) {
    if ((p.args & (1u << arg)) != 0) EmitFdArgCheck(e, fds, arg);
  }
  e.Return(SECCOMP_RET_ALLOW);
}

}  // namespace

int BuildLazyFileFilter(const LazyFile* files, int count, sock_filter* out, int capacity) {
  if (files == nullptr || count <= 0 || count > kMaxLazyFiles || out == nullptr) return -EINVAL;
  Fds fds{files, count, UINT32_MAX, 0};
  for (int i = 0; i < count; ++i) {
    if (files[i].fd < 0) return -EINVAL;
    for (int j = 0; j < i; ++j) {
      if (files[j].fd == files[i].fd) return -EINVAL;
    }
    const auto fd = static_cast<uint32_t>(files[i].fd);
    if (fd < fds.min) fds.min = fd;
    if (fd > fds.max) fds.max = fd;
  }

  Pattern patterns[kMaxPatterns];
  int pattern_count = 0;
  int pattern_of[kMaxTable] = {};
  if (kLazySyscallCount > kMaxTable) return -EINVAL;
  for (int i = 0; i < kLazySyscallCount; ++i) {
    pattern_of[i] = PatternOf(kLazySyscalls[i], patterns, &pattern_count);
    if (pattern_of[i] < 0) return -EINVAL;
  }

  Emitter e(out, capacity);
  e.Load(kOffsetArch);
  e.Emit(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  e.Return(SECCOMP_RET_ERRNO | ENOSYS);
  e.Load(kOffsetNr);
  e.Emit(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 0, 1);
  e.Return(SECCOMP_RET_ERRNO | ENOSYS);

  Fixup fixups[kMaxTable];
  int fixup_count = 0;
  EmitTree(e, pattern_of, 0, kLazySyscallCount, fixups, &fixup_count);

  int block_start[kMaxPatterns];
  for (int p = 0; p < pattern_count; ++p) {
    block_start[p] = e.size();
    EmitBlock(e, fds, patterns[p]);
  }
  for (int i = 0; i < fixup_count; ++i) {
    e.LandAt(fixups[i].at, block_start[fixups[i].pattern]);
  }
  if (e.size() > capacity) return -ENOSPC;
  return e.size();
}

}  // namespace ember::restorer
