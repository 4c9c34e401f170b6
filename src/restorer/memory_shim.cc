#include "restorer/memory_shim.h"

#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/filter.h>
#include <linux/mman.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include "restorer/memory_shim_filter.h"
#include "restorer/memory_shim_internal.h"
#include "restorer/memory_shim_maps.h"
#include "restorer/syscall.h"

// The shim's only madvise/mremap instruction, and its rt_sigreturn trampoline. The filter lets
// calls through whose instruction pointer is ember_shim_syscall_return (right after `syscall`),
// so the handler's own calls are not trapped again. Arguments: nr, then up to five syscall
// arguments in the C calling convention's registers.
__asm__(R"(
    .pushsection .text.ember_shim,"ax",@progbits
    .globl ember_shim_syscall
    .hidden ember_shim_syscall
    .type ember_shim_syscall,@function
ember_shim_syscall:
    movq %rdi, %rax
    movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %r10
    movq %r9, %r8
    syscall
    .globl ember_shim_syscall_return
    .hidden ember_shim_syscall_return
ember_shim_syscall_return:
    ret
    .size ember_shim_syscall, .-ember_shim_syscall

    .globl ember_shim_sigreturn
    .hidden ember_shim_sigreturn
    .type ember_shim_sigreturn,@function
ember_shim_sigreturn:
    movq $15, %rax
    syscall
    ud2
    .size ember_shim_sigreturn, .-ember_shim_sigreturn
    .popsection
)");

extern "C" {
__attribute__((visibility("hidden"))) extern char ember_shim_syscall_return[];
__attribute__((visibility("hidden"))) void ember_shim_sigreturn();
}

namespace ember::restorer {
namespace shim {

ShimState g_shim;

}  // namespace shim
namespace {

using namespace shim;  // NOLINT(google-build-using-namespace)

sock_filter g_filter[kMaxShimFilterLength];

uint64_t PageRoundUp(uint64_t n) { return (n + kPageSize - 1) & ~(kPageSize - 1); }

// The FileOrigin that contains `address`, or null (the memory was anonymous).
const FileOrigin* OriginOf(uint64_t address) {
  int low = 0, high = g_shim.origin_count;
  while (low < high) {
    const int mid = (low + high) / 2;
    const FileOrigin& o = g_shim.origins[mid];
    if (address < o.start) {
      high = mid;
    } else if (address >= o.end) {
      low = mid + 1;
    } else {
      return &o;
    }
  }
  return nullptr;
}

// The end of the part of `piece` from `start` on that lies wholly in `origin` (null: wholly
// outside every origin).
uint64_t PartEnd(const ImagePiece& piece, uint64_t start, const FileOrigin* origin) {
  if (origin != nullptr) return origin->end < piece.end ? origin->end : piece.end;
  uint64_t end = piece.end;
  for (int i = 0; i < g_shim.origin_count; ++i) {
    const FileOrigin& o = g_shim.origins[i];
    if (o.start > start && o.start < end) end = o.start;
  }
  return end;
}

// Calls fn(part, origin) for each image-backed part of [begin, end): a piece of one image
// mapping, cut where FileOrigin areas begin and end (origin: the one it lies in, or null).
// Stops at the first error.
template <typename Fn>
long ForEachImagePiece(uint64_t begin, uint64_t end, Fn fn) {
  constexpr long kBatch = 16;
  ImagePiece pieces[kBatch];
  uint64_t cursor = begin;
  for (;;) {
    const long n = FindImagePieces(kMapsPath, g_shim.dev_major, g_shim.dev_minor, g_shim.inode,
                                   cursor, end, pieces, kBatch);
    if (n < 0) return n;
    for (long i = 0; i < n; ++i) {
      for (uint64_t at = pieces[i].start; at < pieces[i].end;) {
        const FileOrigin* origin = OriginOf(at);
        const uint64_t part_end = PartEnd(pieces[i], at, origin);
        const long result = fn(ImagePiece{at, part_end, pieces[i].prot}, origin);
        if (result < 0) return result;
        at = part_end;
      }
    }
    if (n < kBatch) return 0;
    cursor = pieces[kBatch - 1].end;
  }
}

// Copies the pages of src[0, size) that differ from dst's to dst: into fresh zero pages only
// the non-zero ones (untouched all-zero pages stay unallocated), into a file mapping only those
// the process changed (the others stay the file's shared pages). Word loops: no libc, and no
// call to the restorer's byte-wise memcpy.
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void CopyDifferingPages(
    uint64_t* dst, const uint64_t* src, uint64_t size) {
  constexpr uint64_t kWords = kPageSize / sizeof(uint64_t);
  for (uint64_t page = 0; page < size / kPageSize; ++page) {
    const uint64_t* from = src + page * kWords;
    uint64_t* to = dst + page * kWords;
    uint64_t differ = 0;
    for (uint64_t i = 0; i < kWords; ++i) differ |= from[i] ^ to[i];
    if (differ == 0) continue;
    for (uint64_t i = 0; i < kWords; ++i) to[i] = from[i];
  }
}

// A private mapping of the origin's file for `piece` (at `address`, or anywhere with 0), or
// -errno.
long MapOriginFile(const ImagePiece& piece, const FileOrigin& origin, uint64_t address, int prot) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(origin.path), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  const long flags = MAP_PRIVATE | (address != 0 ? MAP_FIXED : 0);
  const long mapped = RawSyscall(
      __NR_mmap, static_cast<long>(address), static_cast<long>(piece.end - piece.start), prot,
      flags, fd, static_cast<long>(origin.file_offset + (piece.start - origin.start)));
  RawSyscall(__NR_close, fd);
  return mapped;
}

// Turns an image-backed piece into what it was at checkpoint, with the same contents and
// protection: anonymous memory (origin null) or a private mapping of the origin's file. Copy
// into a fresh such mapping, then move that over the piece.
long CopyToOriginal(const ImagePiece& piece, const FileOrigin* origin) {
  const uint64_t size = piece.end - piece.start;
  const long copy = origin != nullptr
                        ? MapOriginFile(piece, *origin, 0, PROT_READ | PROT_WRITE)
                        : RawSyscall(__NR_mmap, 0, static_cast<long>(size), PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (IsError(copy)) return copy;
  const bool unreadable = (piece.prot & PROT_READ) == 0;
  if (unreadable) {
    const long r = RawSyscall(__NR_mprotect, static_cast<long>(piece.start),
                              static_cast<long>(size), PROT_READ);
    if (IsError(r)) {
      RawSyscall(__NR_munmap, copy, static_cast<long>(size));
      return r;
    }
  }
  // Raw syscalls and /proc/self/maps give addresses as integers.
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  auto* to = reinterpret_cast<uint64_t*>(copy);
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  const auto* from = reinterpret_cast<const uint64_t*>(piece.start);
  CopyDifferingPages(to, from, size);
  long r = 0;
  if (piece.prot != (PROT_READ | PROT_WRITE)) {
    r = RawSyscall(__NR_mprotect, copy, static_cast<long>(size), piece.prot);
  }
  if (!IsError(r)) {
    r = ShimSyscall(__NR_mremap, copy, static_cast<long>(size), static_cast<long>(size),
                    MREMAP_MAYMOVE | MREMAP_FIXED, static_cast<long>(piece.start));
  }
  if (IsError(r)) {
    RawSyscall(__NR_munmap, copy, static_cast<long>(size));
    if (unreadable) {
      RawSyscall(__NR_mprotect, static_cast<long>(piece.start), static_cast<long>(size),
                 piece.prot);
    }
    return r;
  }
  return 0;
}

// What DONTNEED leaves behind in the memory the piece was at checkpoint: fresh zero pages, or
// the file's own pages.
long DropToOriginal(const ImagePiece& piece, const FileOrigin* origin) {
  const long r = origin != nullptr
                     ? MapOriginFile(piece, *origin, piece.start, piece.prot)
                     : RawSyscall(__NR_mmap, static_cast<long>(piece.start),
                                  static_cast<long>(piece.end - piece.start), piece.prot,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return IsError(r) ? r : 0;
}

// Whether [begin, end) overlaps a FileOrigin area.
bool OverlapsOrigin(uint64_t begin, uint64_t end) {
  for (int i = 0; i < g_shim.origin_count; ++i) {
    if (g_shim.origins[i].start < end && begin < g_shim.origins[i].end) return true;
  }
  return false;
}

long EmulateMadvise(uint64_t start, uint64_t length, int advice) {
  const uint64_t end = start + PageRoundUp(length);
  // Arguments the kernel rejects, or a no-op: let it answer.
  if ((start & (kPageSize - 1)) != 0 || length == 0 || end <= start) {
    return ShimSyscall(__NR_madvise, static_cast<long>(start), static_cast<long>(length), advice);
  }
  long result;
  if (advice == kMadvRemove) {
    // Anonymous private memory refuses MADV_REMOVE before anything is removed (a private file
    // mapping refuses it too, with EACCES: the kernel answers that).
    bool any = false;
    result = ForEachImagePiece(start, end, [&any](const ImagePiece&, const FileOrigin* o) -> long {
      if (o != nullptr) return 0;
      any = true;
      return -EINVAL;
    });
    if (any) return -EINVAL;
  } else if (advice == kMadvWipeOnFork || advice == kMadvFree) {
    // Formerly file-backed memory is a private file mapping now as then: the kernel refuses
    // these there as it did.
    result = ForEachImagePiece(start, end, [advice](const ImagePiece& p, const FileOrigin* o) {
      if (o != nullptr) return 0L;
      return advice == kMadvFree ? DropToOriginal(p, nullptr) : CopyToOriginal(p, nullptr);
    });
  } else {
    result = ForEachImagePiece(start, end, DropToOriginal);
  }
  if (result == -EMFILE || result == -ENFILE || result == -ENOENT || result == -EACCES) {
    return -EAGAIN;  // maps unreadable: see the header
  }
  if (result < 0) return result;
  return ShimSyscall(__NR_madvise, static_cast<long>(start), static_cast<long>(length), advice);
}

long EmulateMremap(uint64_t old_address, uint64_t old_size, uint64_t new_size, long flags,
                   uint64_t new_address) {
  const uint64_t old_end = old_address + PageRoundUp(old_size);
  // Only growing, moving to a fixed place or leaving the old range behind (DONTUNMAP) differ
  // from anonymous memory; an in-place shrink or a move the kernel may skip keep the piece
  // where the filter watches it.
  const bool grows = PageRoundUp(new_size) > PageRoundUp(old_size);
  const bool converts = grows || (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) != 0;
  if (converts && (old_address & (kPageSize - 1)) == 0 && old_size != 0 && old_end > old_address) {
    RangeSummary summary;
    long result = SummarizeRange(kMapsPath, g_shim.dev_major, g_shim.dev_minor, g_shim.inode,
                                 old_address, old_end, &summary);
    if (result == 0 && summary.has_image) {
      // mremap wants the range in one mapping, as it was at checkpoint: earlier conversions
      // (a DONTNEED in the middle) may have cut it into several. One copy makes it whole again.
      // Anything else (mixed protections, other files) fails in the kernel as it would have.
      result = summary.one_anonymous_run && !OverlapsOrigin(old_address, old_end)
                   ? CopyToOriginal(ImagePiece{old_address, old_end, summary.prot}, nullptr)
                   : ForEachImagePiece(old_address, old_end, CopyToOriginal);
    }
    if (result == -EMFILE || result == -ENFILE || result == -ENOENT || result == -EACCES) {
      return -ENOMEM;
    }
    if (result < 0) return result;
  }
  return ShimSyscall(__NR_mremap, static_cast<long>(old_address), static_cast<long>(old_size),
                     static_cast<long>(new_size), flags, static_cast<long>(new_address));
}

void ReraiseWithDefaultAction(SigsysInfo* info) {
  const KernelSigaction default_action{};  // SIG_DFL
  RawSyscall(__NR_rt_sigaction, kSigsys, reinterpret_cast<long>(&default_action), 0, 8);
  const long tgid = RawSyscall(__NR_getpid);
  const long tid = RawSyscall(__NR_gettid);
  // Same siginfo (a core dump shows the original cause); sending to oneself allows any code.
  if (IsError(
          RawSyscall(__NR_rt_tgsigqueueinfo, tgid, tid, kSigsys, reinterpret_cast<long>(info)))) {
    RawSyscall(__NR_tgkill, tgid, tid, kSigsys);
  }
  // SIGSYS is blocked until the handler returns; sigreturn unblocks it and it is delivered.
}

// A SIGSYS that is not the shim's: does what the action the process had at install time would
// have done. That action is still the process's: had the process set another one since, the
// kernel would have called that instead of the shim.
void ForwardForeignSigsys(SigsysInfo* info, KernelUcontext* context) {
  const KernelSigaction& kept = g_shim.process_action;  // only its handler changes (RESETHAND)
  SigactionHandler handler = kept.handler;
  if ((kept.flags & kSaResethand) != 0) {
    handler = __atomic_exchange_n(&g_shim.process_action.handler, nullptr, __ATOMIC_ACQ_REL);
  }
  const auto disposition = reinterpret_cast<uintptr_t>(handler);
  if (disposition == kSigDfl || (disposition == kSigIgn && info->code == kSysSeccomp)) {
    ReraiseWithDefaultAction(info);  // a forced seccomp SIGSYS kills even when ignored
    return;
  }
  if (disposition == kSigIgn) return;
  // The mask the kernel would have set for that handler (the shim's blocks everything), but
  // with SIGSYS open: a trapped call in that handler (free() reaching madvise) must reach the
  // shim, not kill the process. A second foreign SIGSYS then nests, as with SA_NODEFER.
  const uint64_t mask = (context->sigmask | kept.mask) & ~kSigsysBit;
  RawSyscall(__NR_rt_sigprocmask, kSigSetmask, reinterpret_cast<long>(&mask), 0, 8);
  // A one-argument handler ignores the other two (x86-64 calling convention).
  handler(kSigsys, info, context);
}

void SigsysHandler(int /*signo*/, SigsysInfo* info, KernelUcontext* context) {
  if (info->code != kSysSeccomp || static_cast<uint32_t>(info->errno_value) != kShimTrapData ||
      info->arch != AUDIT_ARCH_X86_64 ||
      (info->syscall != __NR_madvise && info->syscall != __NR_mremap)) {
    ForwardForeignSigsys(info, context);
    return;
  }
  __atomic_fetch_add(&g_shim.traps, 1, __ATOMIC_RELAXED);
  uint64_t* regs = context->gregs;
  long result;
  if (info->syscall == __NR_madvise) {
    result = EmulateMadvise(regs[kRdi], regs[kRsi], static_cast<int>(regs[kRdx]));
  } else {
    result =
        EmulateMremap(regs[kRdi], regs[kRsi], regs[kRdx], static_cast<long>(regs[kR10]), regs[kR8]);
  }
  regs[kRax] = static_cast<uint64_t>(result);
}

// The places the image is mapped privately now, merged to at most kMaxShimRanges ranges, and
// the places of executable mappings (the process's code), merged to kMaxShimCodeRanges.
long CollectRanges(AddressRange* ranges, int* count, AddressRange* code, int* code_count) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(kMapsPath), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  RangeWalker walker(static_cast<int>(fd), 0, ~0ULL, false);
  VmaRecord vma;
  *count = 0;
  *code_count = 0;
  while (walker.Next(&vma)) {
    if ((vma.prot & PROT_EXEC) != 0) {
      AddMergedRange(code, code_count, kMaxShimCodeRanges, vma.start, vma.end);
    }
    if (vma.shared || vma.inode != g_shim.inode || vma.dev_major != g_shim.dev_major ||
        vma.dev_minor != g_shim.dev_minor) {
      continue;
    }
    AddMergedRange(ranges, count, vma.start, vma.end);
  }
  RawSyscall(__NR_close, fd);
  return walker.error;
}

}  // namespace

int InstallMemoryShim(const MemoryShimConfig& config) {
  if (g_shim.installed) return -EBUSY;
  g_shim.dev_major = DevMajor(config.image_dev);
  g_shim.dev_minor = DevMinor(config.image_dev);
  g_shim.inode = config.image_ino;
  g_shim.origins = config.file_origins;
  g_shim.origin_count = config.file_origin_count;

  AddressRange ranges[kMaxShimRanges];
  AddressRange code[kMaxShimCodeRanges];
  int count = 0, code_count = 0;
  const AddressRange* image_ranges = config.image_ranges;
  const AddressRange* code_ranges = config.code_ranges;
  if (image_ranges != nullptr) {
    count = config.image_range_count;
    code_count = config.code_range_count;
  } else {
    const long collected = CollectRanges(ranges, &count, code, &code_count);
    if (collected < 0) return static_cast<int>(collected);
    image_ranges = ranges;
    code_ranges = code;
  }
  if (count == 0) return -ENOENT;
  const int length =
      BuildMemoryShimFilter(reinterpret_cast<uint64_t>(ember_shim_syscall_return), image_ranges,
                            count, code_ranges, code_count, g_filter, kMaxShimFilterLength);
  if (length < 0) return length;

  KernelSigaction action{};
  action.handler = reinterpret_cast<SigactionHandler>(&SigsysHandler);
  action.flags = kSaSiginfo | kSaRestorer;
  action.restorer = &ember_shim_sigreturn;
  // Everything blocked while the shim works: a nested handler of the process could make a
  // trapped call while SIGSYS is blocked, which the kernel answers by killing the process.
  action.mask = ~0ULL;
  KernelSigaction previous{};
  long r = RawSyscall(__NR_rt_sigaction, kSigsys, reinterpret_cast<long>(&action),
                      reinterpret_cast<long>(&previous), 8);
  if (IsError(r)) return static_cast<int>(r);
  g_shim.process_action = previous;  // the restored action: see ForwardForeignSigsys

  const sock_fprog program{static_cast<unsigned short>(length), g_filter};
  r = RawSyscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(&program));
  if (IsError(r)) {
    RawSyscall(__NR_rt_sigaction, kSigsys, reinterpret_cast<long>(&previous), 0, 8);
    return static_cast<int>(r);
  }
  g_shim.installed = true;
  return 0;
}

uint64_t MemoryShimTrapCount() { return __atomic_load_n(&g_shim.traps, __ATOMIC_RELAXED); }

}  // namespace ember::restorer
