// /proc/PID/exe of the restored process (RestoreSettings::exe_path).
//
// PR_SET_MM_MAP can set the exe file, but the kernel refuses while any mapping of the current
// exe (ember-restore itself) remains, and the restorer's text, rodata and data are such
// mappings and must stay (the memory shim's handler lives there). So each file-backed page
// range of ember-restore is replaced by an anonymous copy of itself: copy into the scratch slot,
// give the copy the segment's protection, and mremap it over the original in one step. The code
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

void ReplaceWithAnonymousCopy(uint64_t start, uint64_t length, int prot) {
  auto* scratch = reinterpret_cast<unsigned char*>(snapshot::kVdsoScratchAddress);  // NOLINT
  Check(RawSyscall(SYS_mmap, static_cast<long>(snapshot::kVdsoScratchAddress),
                   static_cast<long>(length), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
        snapshot::kStageSetMm, start);
  memcpy(scratch, reinterpret_cast<const void*>(start), length);  // NOLINT
  Check(RawSyscall(SYS_mprotect, static_cast<long>(snapshot::kVdsoScratchAddress),
                   static_cast<long>(length), prot),
        snapshot::kStageSetMm, start);
  Check(RawSyscall(SYS_mremap, static_cast<long>(snapshot::kVdsoScratchAddress),
                   static_cast<long>(length), static_cast<long>(length),
                   MREMAP_MAYMOVE | MREMAP_FIXED, static_cast<long>(start)),
        snapshot::kStageSetMm, start);
}

}  // namespace

int OpenExeForMm() {
  const PlanHeader& p = *g_ctx.plan;
  if (!(p.flags & snapshot::kPlanSetExe)) return -1;
  // The first PT_LOAD starts at kRestorerBase with the ELF header (-Ttext-segment).
  const auto* ehdr = reinterpret_cast<const Elf64_Ehdr*>(snapshot::kRestorerBase);  // NOLINT
  const auto* phdrs = reinterpret_cast<const Elf64_Phdr*>(  // NOLINT(performance-no-int-to-ptr)
      snapshot::kRestorerBase + ehdr->e_phoff);
  for (int i = 0; i < ehdr->e_phnum; ++i) {
    const Elf64_Phdr& ph = phdrs[i];
    if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
    uint64_t start = ph.p_vaddr & ~(kPage - 1);
    uint64_t end = (ph.p_vaddr + ph.p_filesz + kPage - 1) & ~(kPage - 1);
    ReplaceWithAnonymousCopy(start, end - start, ProtOf(ph.p_flags));
  }
  return static_cast<int>(
      Check(RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(PlanString(p.exe_path_offset)),
                       O_RDONLY | O_CLOEXEC),
            snapshot::kStageSetMm, 0));
}

}  // namespace ember::restorer
