// /proc/PID/exe of the restored process (RestoreSettings::exe_path).
//
// PR_SET_MM_MAP can set the exe file, but the kernel refuses while any mapping of the current
// exe (ember-restore itself) remains, and the restorer's text, rodata and data are such
// mappings and must stay (the memory shim's handler lives there). So the file-backed segments
// of ember-restore are replaced by an anonymous copy of themselves: copy into the scratch slot,
// mremap it over the originals in one step, give each segment its protection back. The code
// doing this runs from the text it replaces; that is safe because the bytes at every address
// are the same before and after, and nothing writes the data segment in between.
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

constexpr uint64_t kPage = 4096;

int ProtOf(uint32_t p_flags) {
  return ((p_flags & PF_R) ? PROT_READ : 0) | ((p_flags & PF_W) ? PROT_WRITE : 0) |
         ((p_flags & PF_X) ? PROT_EXEC : 0);
}

// [start, end) of every file-backed PT_LOAD segment of ember-restore, with its protection.
struct Segment {
  uint64_t start, end;
  int prot;
};
constexpr int kMaxSegments = 8;

// One anonymous copy of adjacent segments replaces them all: mapped RWX (the code running here
// must stay executable through the move), filled, moved over them in one mremap, then each
// segment gets its own protection back: 2 + n mapping changes instead of 3n (a mapping change
// costs ~5-15 us on this kind of machine).
void ReplaceWithAnonymousCopy(const Segment* segments, int count) {
  const uint64_t low = segments[0].start;
  const uint64_t length = segments[count - 1].end - low;
  Check(RawSyscall(SYS_mmap, static_cast<long>(snapshot::kVdsoScratchAddress),
                   static_cast<long>(length), PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
        snapshot::kStageSetMm, low);
  memcpy(reinterpret_cast<void*>(snapshot::kVdsoScratchAddress),  // NOLINT
         reinterpret_cast<const void*>(low), length);  // NOLINT(performance-no-int-to-ptr)
  Check(RawSyscall(SYS_mremap, static_cast<long>(snapshot::kVdsoScratchAddress),
                   static_cast<long>(length), static_cast<long>(length),
                   MREMAP_MAYMOVE | MREMAP_FIXED, static_cast<long>(low)),
        snapshot::kStageSetMm, low);
  for (int i = 0; i < count; ++i) {
    Check(RawSyscall(SYS_mprotect, static_cast<long>(segments[i].start),
                     static_cast<long>(segments[i].end - segments[i].start), segments[i].prot),
          snapshot::kStageSetMm, segments[i].start);
  }
}

}  // namespace

int OpenExeForMm() {
  const PlanHeader& p = *g_ctx.plan;
  if (!(p.flags & snapshot::kPlanSetExe)) return -1;
  // The first PT_LOAD starts at kRestorerBase with the ELF header (-Ttext-segment).
  const auto* ehdr = reinterpret_cast<const Elf64_Ehdr*>(snapshot::kRestorerBase);  // NOLINT
  const auto* phdrs = reinterpret_cast<const Elf64_Phdr*>(  // NOLINT(performance-no-int-to-ptr)
      snapshot::kRestorerBase + ehdr->e_phoff);
  Segment segments[kMaxSegments];
  int count = 0;
  for (int i = 0; i < ehdr->e_phnum; ++i) {
    const Elf64_Phdr& ph = phdrs[i];
    if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
    uint64_t start = ph.p_vaddr & ~(kPage - 1);
    uint64_t end = (ph.p_vaddr + ph.p_filesz + kPage - 1) & ~(kPage - 1);
    // The linker emits PT_LOADs in ascending order (the ELF spec requires it).
    if (count == kMaxSegments || (count > 0 && start < segments[count - 1].end)) {
      Die(snapshot::kStageSetMm, -22 /* EINVAL: unexpected segments */, start);
    }
    segments[count++] = Segment{start, end, ProtOf(ph.p_flags)};
  }
  // Each run of adjacent segments at once (a gap may hold another segment's bss).
  for (int first = 0; first < count;) {
    int last = first + 1;
    while (last < count && segments[last].start == segments[last - 1].end) ++last;
    ReplaceWithAnonymousCopy(segments + first, last - first);
    first = last;
  }
  return static_cast<int>(
      Check(RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(PlanString(p.exe_path_offset)),
                       O_RDONLY | O_CLOEXEC),
            snapshot::kStageSetMm, 0));
}

}  // namespace ember::restorer
