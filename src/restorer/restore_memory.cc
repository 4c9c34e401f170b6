// Memory: the address space of the restored process, built inside ember-restore's own.
//
// Order and why:
//   1. prefetch   (cold boot) the working set's image ranges, one sequential pass, before any
//                 page is touched, so the first faults find the page cache warm;
//   2. vdso aside the kernel's [vvar]/[vvar_vclock]/[vdso] of ember-restore move to their
//                 recorded places when those are clear of where they are now (usually: ASLR
//                 puts them elsewhere each exec), else into the scratch slot of the restorer's
//                 range: their current place may be needed by an area, and they cannot be
//                 recreated, only moved (same kernel build: the image's vDSO is
//                 byte-identical, CheckCompat);
//   3. unmap      everything outside [kRestorerBase, +kRestorerSpan) but kernel areas already
//                 placed: the old stack (argv, auxv: read before), nothing else of ember-restore
//                 lives outside its range;
//   4. map        every area at its recorded place (below), then its recorded protection;
//   5. vdso place the kernel areas still aside to their recorded addresses (AT_SYSINFO_EHDR in
//                 the restored auxv points there; signal delivery uses mm->context.vdso, which
//                 mremap of [vdso] updates);
//   6. mm bounds  PR_SET_MM_MAP last: the kernel checks the bounds against the current limits
//                 and /proc/PID/{cmdline,environ,stat} read through them.
#include <fcntl.h>
#include <linux/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "restorer/memory_shim.h"
#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

using snapshot::kRestorerBase;
using snapshot::kRestorerSpan;
using snapshot::kVdsoScratchAddress;
using snapshot::PlanArea;
using snapshot::PlanRange;
using snapshot::PlanRun;

constexpr uint64_t kTaskSize = 0x7ffffffff000ULL;  // x86-64, 4-level paging
constexpr uint64_t kPage = 4096;

struct KernelArea {
  uint64_t start, end;
};

// The recorded kernel areas, lowest first, and the lowest start (their block's origin).
int KernelAreas(KernelArea out[3], uint64_t* low) {
  const PlanHeader& p = *g_ctx.plan;
  int n = 0;
  if (p.vvar_start) out[n++] = {p.vvar_start, p.vvar_end};
  if (p.vclock_start) out[n++] = {p.vclock_start, p.vclock_end};
  if (p.vdso_start) out[n++] = {p.vdso_start, p.vdso_end};
  *low = ~0ULL;
  for (int i = 0; i < n; ++i) *low = out[i].start < *low ? out[i].start : *low;
  return n;
}

// Set by MoveKernelAreasAside when it moved the kernel areas straight to their recorded places
// (the block they form now and the recorded one are disjoint): UnmapAllButRestorer keeps
// [g_placed_low, g_placed_high) and PlaceKernelAreas has nothing left to do. Half the mremaps.
bool g_kernel_areas_placed = false;
uint64_t g_placed_low = 0, g_placed_high = 0;

// munmap [begin, end) except the placed kernel areas' block.
void UnmapAround(uint64_t begin, uint64_t end) {
  uint64_t keep_low = g_kernel_areas_placed ? g_placed_low : end;
  uint64_t keep_high = g_kernel_areas_placed ? g_placed_high : end;
  if (keep_high <= begin || keep_low >= end) keep_low = keep_high = end;
  if (keep_low > begin) {
    Check(RawSyscall(SYS_munmap, static_cast<long>(begin), static_cast<long>(keep_low - begin)),
          snapshot::kStageUnmap, begin);
  }
  if (keep_high < end) {
    Check(RawSyscall(SYS_munmap, static_cast<long>(keep_high), static_cast<long>(end - keep_high)),
          snapshot::kStageUnmap, keep_high);
  }
}

void ReadFully(uint64_t address, uint64_t length, uint64_t offset) {
  while (length > 0) {
    long n = RawSyscall(SYS_pread64, g_ctx.image_fd, static_cast<long>(address),
                        static_cast<long>(length), static_cast<long>(offset));
    if (n == -4) continue;  // EINTR
    if (n == 0) Die(snapshot::kStageFillArea, -5 /* EIO: the image is shorter */, address);
    Check(n, snapshot::kStageFillArea, address);
    address += n;
    length -= n;
    offset += n;
  }
}

// The file of the previous file-backed area: a shared library is four or five adjacent areas of
// one file, and an open through the overlay costs more than the mmap itself.
struct OpenedFile {
  const char* path = nullptr;
  bool shared = false;
  long fd = -1;
};
OpenedFile g_last_file;

void CloseLastFile() {
  if (g_last_file.fd >= 0) RawSyscall(SYS_close, g_last_file.fd);
  g_last_file = OpenedFile{};
}

long OpenForMapping(const PlanArea& a) {
  const char* path = PlanString(a.path_offset);
  bool shared = (a.map_flags & MAP_SHARED) != 0;
  if (g_last_file.fd >= 0 && g_last_file.shared == shared && SameString(g_last_file.path, path)) {
    return g_last_file.fd;
  }
  CloseLastFile();
  long fd = -1;
  if (shared) {
    // Writable if the file allows it: the process may mprotect the mapping writable later.
    fd = RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDWR | O_CLOEXEC);
    if (IsError(fd) && !(a.prot & PROT_WRITE)) fd = -1;
  }
  if (fd == -1) {
    fd = RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  }
  if (!IsError(fd)) g_last_file = OpenedFile{path, shared, fd};
  return fd;
}

// What the memory shim must know of the mapped image (InstallShim): where it is mapped, where
// the process's code is, and which image mappings were file-backed. Filled by MapAreas in
// address order; the origins stay for the life of the process (the shim reads them on a trap).
struct ShimTables {
  AddressRange image[kMaxShimRanges];
  AddressRange code[kMaxShimCodeRanges];
  FileOrigin origins[kMaxFileOrigins];
  int image_count;
  int code_count;
  int origin_count;
  bool vdso_added;
};
ShimTables g_shim_tables;

// The shim's filter checks each code range with 11 instructions, and attaching a filter costs
// ~0.12 us per instruction here (~18 us + 0.12 us/insn: 600 instructions, 90 us). A Python
// instance with C extensions has 25+ executable areas, packed close together: merged across
// their smallest gaps into a few ranges they still cover little more than the process's own
// libraries (the ranges only keep a program the process execs, whose libraries ASLR puts
// elsewhere, from being trapped).
constexpr int kCodeRanges = 8;

void AddCodeRange(uint64_t start, uint64_t end) {
  AddMergedRange(g_shim_tables.code, &g_shim_tables.code_count, kCodeRanges, start, end);
}

// The recorded vdso is code of the process too (placed after the areas, at its recorded
// address); added in address order among the areas.
void AddVdsoBelow(uint64_t address) {
  const PlanHeader& p = *g_ctx.plan;
  if (g_shim_tables.vdso_added || p.vdso_start == 0 || p.vdso_start >= address) return;
  AddCodeRange(p.vdso_start, p.vdso_end);
  g_shim_tables.vdso_added = true;
}

// The image mapping not made yet: runs that continue each other in memory and in the image
// with the same protection are one mmap (the last run of an area and the first of the next
// one often do: a library's data, then its bss, both stored whole). The kernel would merge
// the two mappings anyway; one call instead of two. Flushed before anything maps over it.
struct PendingImageMapping {
  uint64_t address, length, image_offset;
  int prot;
};
PendingImageMapping g_pending;

void FlushImageMapping() {
  if (g_pending.length == 0) return;
  Check(RawSyscall(SYS_mmap, static_cast<long>(g_pending.address),
                   static_cast<long>(g_pending.length), g_pending.prot, MAP_PRIVATE | MAP_FIXED,
                   g_ctx.image_fd, static_cast<long>(g_pending.image_offset)),
        snapshot::kStageFillArea, g_pending.address);
  AddMergedRange(g_shim_tables.image, &g_shim_tables.image_count, g_pending.address,
                 g_pending.address + g_pending.length);
  g_pending.length = 0;
}

void MapFromImage(const PlanRun& run, int prot) {
  PendingImageMapping& p = g_pending;
  if (p.length != 0 && p.prot == prot && p.address + p.length == run.address &&
      p.image_offset + p.length == run.image_offset) {
    p.length += run.length;
    return;
  }
  FlushImageMapping();
  p = PendingImageMapping{run.address, run.length, run.image_offset, prot};
}

void MapArea(const PlanArea& a, bool copy) {
  const PlanRun* runs = PlanTable<PlanRun>(g_ctx.plan->runs_offset) + a.first_run;
  uint64_t length = a.end - a.start;
  bool file = a.kind == snapshot::kPlanFilePrivate || a.kind == snapshot::kPlanFileShared;
  // Stored pages of a private file mapping (the process's copies of file pages) are mapped
  // from the image over the file, like anonymous memory's: copying them (a fault and two
  // copies per page: libpython's data alone is 1.2 MiB) was most of the memory phase. The
  // memory shim learns that they were file-backed (FileOrigin: DONTNEED brings the file back);
  // past its table's capacity they are copied. The stack is always copied: a file mapping
  // cannot grow down (host-facts 7).
  bool overlay_file = !copy && a.kind == snapshot::kPlanFilePrivate && a.run_count > 0 &&
                      g_shim_tables.origin_count < kMaxFileOrigins;
  bool copy_runs = copy || (a.kind != snapshot::kPlanAnonymous && !overlay_file);
  if (overlay_file) {
    g_shim_tables.origins[g_shim_tables.origin_count++] =
        FileOrigin{a.start, a.end, a.file_offset, PlanString(a.path_offset)};
  }
  if (!copy) {
    AddVdsoBelow(a.start);
    if (a.prot & PROT_EXEC) AddCodeRange(a.start, a.end);
  }
  int prot = a.prot;
  if (copy_runs && a.run_count > 0) prot |= PROT_READ | PROT_WRITE;
  // An area mapped from the image, whose one run covers all of it, is that run's mapping alone:
  // an anonymous area whose small gaps the checkpoint stored as zeros, a file area every page
  // of which the process had written (data, relro).
  bool whole_run =
      !copy_runs && a.run_count == 1 && runs[0].address == a.start && runs[0].length == length;
  if (whole_run) {
    // Nothing under the run.
  } else if (file) {
    long fd = Check(OpenForMapping(a), snapshot::kStageMapArea, a.start);
    Check(RawSyscall(SYS_mmap, static_cast<long>(a.start), static_cast<long>(length), prot,
                     (a.map_flags & (MAP_SHARED | MAP_PRIVATE)) | MAP_FIXED, fd,
                     static_cast<long>(a.file_offset)),
          snapshot::kStageMapArea, a.start);
  } else {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    if (a.kind == snapshot::kPlanStack) flags |= MAP_GROWSDOWN;
    Check(RawSyscall(SYS_mmap, static_cast<long>(a.start), static_cast<long>(length), prot, flags,
                     -1, 0),
          snapshot::kStageMapArea, a.start);
  }
  for (uint32_t i = 0; i < a.run_count; ++i) {
    const PlanRun& run = runs[i];
    if (copy_runs) {
      ReadFully(run.address, run.length, run.image_offset);
    } else {
      // Overlay memory: the page cache of the image is the shared base, written pages become
      // private copies.
      MapFromImage(run, a.prot);
    }
  }
  if (prot != a.prot) {
    Check(RawSyscall(SYS_mprotect, static_cast<long>(a.start), static_cast<long>(length), a.prot),
          snapshot::kStageProtectArea, a.start);
  }
  if (a.dontdump) {
    FlushImageMapping();
    RawSyscall(SYS_madvise, static_cast<long>(a.start), static_cast<long>(length), MADV_DONTDUMP);
  }
}

}  // namespace

void PrefetchWorkingSet() {
  const PlanHeader& p = *g_ctx.plan;
  if (!(p.flags & snapshot::kPlanPrefetch)) return;
  const PlanRange* ranges = PlanTable<PlanRange>(p.prefetch_offset);
  for (uint32_t i = 0; i < p.prefetch_count; ++i) {
    Check(RawSyscall(SYS_readahead, g_ctx.image_fd, static_cast<long>(ranges[i].image_offset),
                     static_cast<long>(ranges[i].length)),
          snapshot::kStagePrefetch, ranges[i].image_offset);
  }
}

void MoveKernelAreasAside() {
  const PlanHeader& p = *g_ctx.plan;
  KernelArea areas[3];
  uint64_t low;
  int n = KernelAreas(areas, &low);
  if (n == 0) return;
  if (g_ctx.vdso_now == 0) Die(snapshot::kStageMoveVdso, -2 /* ENOENT: no AT_SYSINFO_EHDR */, 0);
  uint64_t high = 0;
  for (int i = 0; i < n; ++i) high = areas[i].end > high ? areas[i].end : high;
  // Same kernel build: the current areas sit at the recorded distances from the vdso.
  const uint64_t now_low = g_ctx.vdso_now + (low - p.vdso_start);
  const uint64_t span = high - low;
  // Straight to the recorded places when no move can land on an area not yet moved: the two
  // blocks are disjoint, or the same (nothing to move). Whatever sits at the recorded place
  // now (ember-restore's old stack) goes anyway.
  const bool direct = now_low == low || now_low + span <= low || low + span <= now_low;
  for (int i = 0; i < n; ++i) {
    uint64_t now = now_low + (areas[i].start - low);
    uint64_t target = direct ? areas[i].start : kVdsoScratchAddress + (areas[i].start - low);
    if (now == target) continue;
    uint64_t size = areas[i].end - areas[i].start;
    Check(RawSyscall(SYS_mremap, static_cast<long>(now), static_cast<long>(size),
                     static_cast<long>(size), MREMAP_MAYMOVE | MREMAP_FIXED,
                     static_cast<long>(target)),
          snapshot::kStageMoveVdso, now);
  }
  g_kernel_areas_placed = direct;
  g_placed_low = low;
  g_placed_high = high;
}

void UnmapAllButRestorer() {
  UnmapAround(0, kRestorerBase);
  UnmapAround(kRestorerBase + kRestorerSpan, kTaskSize);
}

void MapAreas() {
  const PlanHeader& p = *g_ctx.plan;
  bool copy = (p.flags & snapshot::kPlanCopyMemory) != 0;
  const PlanArea* areas = PlanTable<PlanArea>(p.areas_offset);
  for (uint32_t i = 0; i < p.area_count; ++i) MapArea(areas[i], copy);
  FlushImageMapping();
  if (!copy) AddVdsoBelow(~0ULL);
  CloseLastFile();
}

void FillShimConfig(MemoryShimConfig* config) {
  config->image_ranges = g_shim_tables.image;
  config->image_range_count = g_shim_tables.image_count;
  config->code_ranges = g_shim_tables.code;
  config->code_range_count = g_shim_tables.code_count;
  config->file_origins = g_shim_tables.origins;
  config->file_origin_count = g_shim_tables.origin_count;
}

void PlaceKernelAreas() {
  if (g_kernel_areas_placed) return;
  KernelArea areas[3];
  uint64_t low;
  int n = KernelAreas(areas, &low);
  for (int i = 0; i < n; ++i) {
    uint64_t size = areas[i].end - areas[i].start;
    Check(RawSyscall(SYS_mremap, static_cast<long>(kVdsoScratchAddress + (areas[i].start - low)),
                     static_cast<long>(size), static_cast<long>(size),
                     MREMAP_MAYMOVE | MREMAP_FIXED, static_cast<long>(areas[i].start)),
          snapshot::kStagePlaceVdso, areas[i].start);
  }
}

void SetMmBounds() {
  const PlanHeader& p = *g_ctx.plan;
  struct prctl_mm_map map {};
  map.start_code = p.mm.start_code;
  map.end_code = p.mm.end_code;
  map.start_data = p.mm.start_data;
  map.end_data = p.mm.end_data;
  map.start_brk = p.mm.start_brk;
  map.brk = p.mm.brk;
  map.start_stack = p.mm.start_stack;
  map.arg_start = p.mm.arg_start;
  map.arg_end = p.mm.arg_end;
  map.env_start = p.mm.env_start;
  map.env_end = p.mm.env_end;
  map.auxv = const_cast<__u64*>(PlanTable<__u64>(p.auxv_offset));
  map.auxv_size = p.auxv_words * sizeof(uint64_t);
  // -1 leaves exe as ember-restore (no exe_path in the settings).
  int exe = OpenExeForMm();
  map.exe_fd = static_cast<uint32_t>(exe);
  Check(
      RawSyscall(SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, reinterpret_cast<long>(&map), sizeof map, 0),
      snapshot::kStageSetMm, 0);
  if (exe >= 0) RawSyscall(SYS_close, exe);
}

}  // namespace ember::restorer
