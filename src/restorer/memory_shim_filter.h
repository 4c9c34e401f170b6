// The memory shim's seccomp filter (memory_shim.h), built as a pure function so tests can run
// it through an interpreter (sandbox/seccomp_eval.h) for inputs a live process cannot make.
//
// It returns SECCOMP_RET_TRAP | kShimTrapData, on x86-64, for calls made from the restored
// process's code (see below) but not at the shim's own syscall instruction, that are madvise
// with one of the advices below, or mremap, whose range [addr, addr + len) (madvise: start,
// len; mremap: old_address, old_size) overlaps one of the given image ranges: the places the
// process's image-backed memory had when the filter was installed. Image-backed memory cannot
// appear anywhere else afterwards (the shim turns every mremap that could move it into
// anonymous memory first, and nothing maps the image again), so every other call is let
// through without a signal: a process that madvises its post-restore allocations pays a few
// BPF instructions, not a trap. Everything else, rt_sigaction of SIGSYS included, gets
// SECCOMP_RET_ALLOW (other filters, such as the sandbox's allowlist, still decide).
//
// rt_sigaction(SIGSYS) is not trapped on purpose: a trap is a forced SIGSYS, fatal while SIGSYS
// is blocked, and a vfork child (CPython's subprocess, posix_spawn) blocks every signal and then
// reads and resets every signal's action, SIGSYS's included, from the parent's libc. So the
// process's sigaction(SIGSYS) reaches the kernel: it reads the shim's handler, and a handler it
// sets replaces the shim's (memory_shim.h, limits).
//
// "The restored process's code" is the code ranges: where executable mappings were at install
// time (libc, the interpreter, its extension modules). A filter survives execve but the shim's
// handler does not: a program the process executes has its libc elsewhere (ASLR), so its own
// madvise/mremap calls are not trapped, where a trap would kill it. With no code ranges, calls
// from anywhere are trapped.
#pragma once

#include <linux/filter.h>
#include <stdint.h>

namespace ember::restorer {

// The SECCOMP_RET_DATA of the shim's traps: the kernel hands it to the handler in si_errno, so
// the handler can tell its own SIGSYS from one of another filter.
inline constexpr uint32_t kShimTrapData = 0x3e5b;

// The advices that behave differently on a private file mapping than on anonymous memory. Hidden:
// the filter reads the array RIP-relative, not through the GOT (which ld cannot relax in the
// restorer above 2 GiB).
inline constexpr int kMadvDontneed = 4;
inline constexpr int kMadvFree = 8;
inline constexpr int kMadvRemove = 9;
inline constexpr int kMadvWipeOnFork = 18;
inline constexpr int kMadvDontneedLocked = 24;
inline constexpr int kMadvGuardInstall = 102;
__attribute__((visibility("hidden"))) inline constexpr int kShimAdvices[] = {
    kMadvDontneed, kMadvFree, kMadvRemove, kMadvWipeOnFork, kMadvDontneedLocked, kMadvGuardInstall};

struct AddressRange {
  uint64_t start;
  uint64_t end;  // exclusive
};

// Most ranges the filter checks (11 instructions each); more mappings are merged across their
// smallest gaps (see AddMergedRange), which only makes the filter trap more.
inline constexpr int kMaxShimRanges = 64;
inline constexpr int kMaxShimCodeRanges = 32;
inline constexpr int kMaxShimFilterLength = 64 + 11 * (kMaxShimRanges + kMaxShimCodeRanges);

// Writes the filter into out[0, capacity). Both range lists must be sorted and disjoint, at
// most kMaxShimRanges image ranges (at least one) and kMaxShimCodeRanges code ranges.
// `shim_syscall_return` is the address right after the shim's `syscall` instruction (what
// seccomp_data.instruction_pointer holds for calls made there). Returns the number of
// instructions, -EINVAL (too many, unsorted or empty ranges) or -ENOSPC.
int BuildMemoryShimFilter(uint64_t shim_syscall_return, const AddressRange* image_ranges,
                          int image_count, const AddressRange* code_ranges, int code_count,
                          sock_filter* out, int capacity);

// Appends [start, end) to a sorted list of at most `capacity` ranges (start must not be below
// the last range's end): joins it to the last range when they touch, and when the list would
// overflow, merges the two neighbours with the smallest gap between them.
void AddMergedRange(AddressRange* ranges, int* count, int capacity, uint64_t start, uint64_t end);
// The same with capacity kMaxShimRanges.
void AddMergedRange(AddressRange* ranges, int* count, uint64_t start, uint64_t end);

}  // namespace ember::restorer
