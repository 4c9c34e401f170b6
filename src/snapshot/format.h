// The on-disk snapshot image: one file holding a checkpointed process (ProcessState) in the layout
// the restorer uses directly (separated state recovery: no parsing, no per-record allocation).
//
//  file offset                                   all integers little-endian, x86-64 only
//  0     ┌──────────────────────────────────────┐
//        │ FileHeader (320 B)                    │ magic "EMBERSNP", format version, file size,
//        │   limits (SizeLimits, 64 B)           │ header checksum (XXH3-64 of the header with the
//        │   counts (ImageCounts, 48 B)          │ field zeroed; it covers the section table and so
//        │   section table: 5 × SectionEntry     │ every section's own checksum), size limits,
//        counts
//  320   ├──────────────────────────────────────┤
//        │ kCompat: CompatRecordView (256 B)     │ what the restoring host must match
//        ├──────────────────────────────────────┤ (8-aligned)
//        │ kRelocations: uint64 × n              │ metadata-relative offsets of every RelPtr field,
//        │                                       │ strictly ascending
//        ├─────────────── pad to 4096 ──────────┤
//        │ kMetadata (page aligned, mmap'ed      │ ProcessRecord        (offset 0, 2544 B)
//        │   MAP_PRIVATE and relocated in place) │ ThreadRecord  × threads      (320 B each)
//        │                                       │ AreaRecord    × areas        ( 96 B each)
//        │                                       │ PageRunRecord × page runs    ( 16 B each)
//        │                                       │ FileRecord    × files        ( 56 B each)
//        │                                       │ IntervalTimerRecord × n      ( 24 B each)
//        │                                       │ PosixTimerRecord    × n      ( 48 B each)
//        │                                       │ auxv: uint64 × words
//        │                                       │ xsave blobs (64-aligned), then the string pool
//        │                                       │ (NUL-terminated; starts with the empty string)
//        ├─────────────── pad to 4096 ──────────┤
//        │ kPageData (page aligned)              │ the stored pages, area by area; within an area
//        │   4096 × stored pages                 │ a run of consecutive page indexes is contiguous
//        │                                       │ here, so one mmap(MAP_PRIVATE) maps one run
//        ├──────────────────────────────────────┤ (8-aligned)
//        │ kWorkingSet: uint64 × n               │ page addresses to prefetch; last in the file so
//        │                                       │ RewriteWorkingSet copies everything before it
//  end   └──────────────────────────────────────┘ == header.file_size
//
// Sections sit in the order of the table, never overlap, and the last ends at the file's end.
// A RelPtr holds a metadata-relative offset on disk (0 = null, only with a count of 0) and, after
// ImageReader relocated it, the absolute address. The reader proves before relocating that the
// relocation table lists exactly the RelPtr fields of the records, that every pointer lands
// inside the metadata, aligned for its type, with its whole array/string in bounds, and that no
// data a pointer reaches overlaps a record holding pointers (relocation cannot rewrite it).
//
// Checksums: the header, compat, relocations, metadata and working set are verified on every open
// (they are small). The page data is verified only by VerifyPages(): a cold boot maps pages
// lazily and must not read every page of the image to start. See docs/snapshot-format.md.
#pragma once

#include <sys/user.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "snapshot/process_state.h"

namespace ember::snapshot {

inline constexpr char kImageMagic[8] = {'E', 'M', 'B', 'E', 'R', 'S', 'N', 'P'};
// 2: ProcessRecord::clocks (the checkpoint's CLOCK_MONOTONIC and CLOCK_BOOTTIME). A reader
// opens only its own version: an older image has another ProcessRecord layout.
inline constexpr uint32_t kFormatVersion = 2;

enum class SectionKind : uint32_t {
  kCompat = 0,
  kRelocations = 1,
  kMetadata = 2,
  kPageData = 3,
  kWorkingSet = 4,
};
inline constexpr uint32_t kSectionCount = 5;
std::string_view SectionName(SectionKind kind);

// Offsets from the start of the file. kMetadata and kPageData start at a multiple of kPageSize.
struct SectionEntry {
  uint32_t kind;      // SectionKind; equal to the entry's index in the table
  uint32_t reserved;  // 0
  uint64_t offset;
  uint64_t size;
  uint64_t checksum;  // XXH3_64bits of the section's bytes
};
static_assert(sizeof(SectionEntry) == 32);

// The reader refuses any image beyond these; the writer records the limits it wrote under, and
// the reader also refuses an image whose counts exceed its header's limits.
struct SizeLimits {
  uint32_t max_threads;
  uint32_t max_areas;
  uint32_t max_page_runs;
  uint32_t max_files;
  uint32_t max_timers;  // of each kind (interval, POSIX)
  uint32_t max_auxv_words;
  uint32_t max_xsave_bytes;   // per thread
  uint32_t max_string_bytes;  // one path, without its NUL
  uint64_t max_metadata_bytes;
  uint64_t max_relocations;
  uint64_t max_working_set_pages;
  uint64_t max_stored_pages;
};
static_assert(sizeof(SizeLimits) == 64);

inline constexpr SizeLimits kLimits = {
    .max_threads = 4096,
    .max_areas = 1 << 17,  // twice vm.max_map_count's default (65530)
    .max_page_runs = 1 << 24,
    .max_files = 1 << 16,
    .max_timers = 4096,
    .max_auxv_words = 512,
    .max_xsave_bytes = 1 << 16,  // AMX needs ~11 KiB
    .max_string_bytes = 4095,    // PATH_MAX without the NUL
    .max_metadata_bytes = uint64_t{1} << 30,
    .max_relocations = uint64_t{1} << 24,
    .max_working_set_pages = uint64_t{1} << 26,
    .max_stored_pages = uint64_t{1} << 28,  // 1 TiB of pages
};

struct ImageCounts {
  uint32_t threads;
  uint32_t areas;
  uint32_t page_runs;
  uint32_t files;
  uint32_t itimers;
  uint32_t posix_timers;
  uint64_t relocations;
  uint64_t stored_pages;
  uint64_t working_set_pages;
};
static_assert(sizeof(ImageCounts) == 48);

struct FileHeader {
  char magic[8];             // kImageMagic
  uint32_t format_version;   // kFormatVersion
  uint32_t header_size;      // sizeof(FileHeader)
  uint64_t file_size;        // the whole file
  uint64_t header_checksum;  // XXH3_64bits of this header with this field 0
  uint32_t page_size;        // kPageSize
  uint32_t section_count;    // kSectionCount
  uint64_t reserved;         // 0
  SizeLimits limits;         // the limits the writer enforced
  ImageCounts counts;        // equal to the process record's counts
  SectionEntry sections[kSectionCount];
};
static_assert(sizeof(FileHeader) == 320);
static_assert(offsetof(FileHeader, header_checksum) == 24);
static_assert(offsetof(FileHeader, limits) == 48);
static_assert(offsetof(FileHeader, counts) == 112);
static_assert(offsetof(FileHeader, sections) == 160);

// The compat record as stored: fixed-size NUL-terminated strings, no pointers.
struct CompatRecordView {
  char kernel_release[72];  // uname -r (the kernel allows 64 characters)
  uint64_t vdso_hash;       // XXH64 (seed 0) of the [vdso] bytes
  uint64_t vdso_size;
  uint32_t cpuid_1_ecx, cpuid_1_edx;
  uint32_t cpuid_7_ebx, cpuid_7_ecx, cpuid_7_edx;
  uint32_t xsave_size;
  uint64_t xcr0;
  char glibc_version[104];  // the checkpointer stores the image libc's GNU build-id here
  char ember_version[32];
};
static_assert(sizeof(CompatRecordView) == 256);
static_assert(offsetof(CompatRecordView, vdso_hash) == 72);
static_assert(offsetof(CompatRecordView, xcr0) == 112);
static_assert(offsetof(CompatRecordView, glibc_version) == 120);
static_assert(offsetof(CompatRecordView, ember_version) == 224);

// A pointer between records. On disk: an offset from the start of the metadata section; after
// relocation: the address. Every RelPtr field of a record is listed in the relocation table,
// except null ones (raw 0, which only a count of 0 may have).
template <typename T>
struct RelPtr {
  uint64_t raw;
  const T* get() const { return std::bit_cast<const T*>(static_cast<uintptr_t>(raw)); }
};
static_assert(sizeof(RelPtr<int>) == 8);

// A path: never null (the empty string points at the pool's first byte), NUL-terminated.
struct StringRef {
  RelPtr<char> chars;
  uint32_t length;  // without the NUL
  uint32_t reserved;
  const char* c_str() const { return chars.get(); }
  std::string_view view() const { return {chars.get(), length}; }
};
static_assert(sizeof(StringRef) == 16);

struct SignalActionRecord {
  uint64_t handler, flags, restorer, mask;
};
static_assert(sizeof(SignalActionRecord) == 32);

struct RlimitRecord {
  uint64_t cur, max;
};

struct MmRecord {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
};
static_assert(sizeof(MmRecord) == 88);

// A thread's xsave blob is 64-byte aligned in the metadata (and so in memory, the
// section being page aligned), as XRSTOR requires.
inline constexpr uint64_t kXsaveAlign = 64;

inline constexpr uint32_t kThreadRestartSyscall = 1;  // ThreadRecord::flags

struct ThreadRecord {
  int32_t tid;
  uint32_t flags;         // kThreadRestartSyscall
  user_regs_struct regs;  // PTRACE_SETREGS takes it as is
  RelPtr<uint8_t> xsave;  // NT_X86_XSTATE, xsave_size bytes
  uint32_t xsave_size;
  int32_t altstack_flags;  // SS_*
  uint64_t fs_base, gs_base;
  uint64_t sigmask;
  uint64_t altstack_sp, altstack_size;
  uint64_t clear_child_tid;
  uint64_t robust_list, robust_list_len;
  uint64_t rseq_addr;  // 0 = not registered
  uint32_t rseq_len, rseq_sig;

  std::span<const uint8_t> xsave_bytes() const { return {xsave.get(), xsave_size}; }
  bool restart_syscall() const { return (flags & kThreadRestartSyscall) != 0; }
};
static_assert(sizeof(user_regs_struct) == 216);
static_assert(sizeof(ThreadRecord) == 320);
static_assert(offsetof(ThreadRecord, regs) == 8);
static_assert(offsetof(ThreadRecord, xsave) == 224);
static_assert(offsetof(ThreadRecord, fs_base) == 240);
static_assert(offsetof(ThreadRecord, rseq_addr) == 304);

// Stored pages [first_page, first_page + page_count) of an area (indexes relative to its start),
// at file_offset (page aligned, inside kPageData): mmap(start + first_page * 4096,
// page_count * 4096, prot, MAP_PRIVATE | MAP_FIXED, fd, file_offset).
struct PageRunRecord {
  uint32_t first_page;
  uint32_t page_count;  // > 0
  uint64_t file_offset;
};
static_assert(sizeof(PageRunRecord) == 16);

struct AreaRecord {
  uint64_t start, end;  // page aligned, end exclusive
  int32_t prot;         // PROT_*
  int32_t flags;        // MAP_*
  uint8_t kind;         // AreaKind
  uint8_t dontdump;     // 0 or 1
  uint16_t reserved;
  uint32_t page_run_count;
  StringRef path;
  uint64_t file_offset;
  uint64_t dev, inode;
  RelPtr<PageRunRecord> page_runs;  // a slice of the process's page runs, ascending, disjoint
  uint64_t stored_pages;            // sum of the runs' page counts
  uint64_t pages_checksum;          // XXH3_64bits of the stored pages in run order

  AreaKind area_kind() const { return static_cast<AreaKind>(kind); }
  std::span<const PageRunRecord> runs() const { return {page_runs.get(), page_run_count}; }
};
static_assert(sizeof(AreaRecord) == 96);
static_assert(offsetof(AreaRecord, path) == 32);
static_assert(offsetof(AreaRecord, page_runs) == 72);

struct FileRecord {
  int32_t fd;
  uint8_t kind;     // FileKind
  uint8_t cloexec;  // 0 or 1
  uint16_t reserved0;
  int32_t open_flags;
  uint32_t reserved1;
  uint64_t offset;
  uint64_t dev, inode;
  StringRef path;

  FileKind file_kind() const { return static_cast<FileKind>(kind); }
};
static_assert(sizeof(FileRecord) == 56);
static_assert(offsetof(FileRecord, path) == 40);

struct IntervalTimerRecord {
  int32_t which;  // ITIMER_*
  uint32_t reserved;
  uint64_t interval_ns, value_ns;
};
static_assert(sizeof(IntervalTimerRecord) == 24);

struct PosixTimerRecord {
  int32_t id, clock_id, signal, notify;
  uint64_t sigev_value;
  uint64_t interval_ns, value_ns;
  int32_t notify_tid;
  uint32_t reserved;
};
static_assert(sizeof(PosixTimerRecord) == 48);

// The process's clocks when it was frozen, as the process itself would have read them (its time
// namespace's offsets included). A restore never lets them go back: the restored process's time
// namespace starts them at max(recorded, the restoring host's) (restore_plan_format.h,
// PlanHeader::checkpoint_clocks). 0 = not recorded.
struct ClockRecord {
  uint64_t monotonic_ns;  // CLOCK_MONOTONIC
  uint64_t boottime_ns;   // CLOCK_BOOTTIME
};
static_assert(sizeof(ClockRecord) == 16);

// The kernel refuses a time namespace whose clock would pass KTIME_SEC_MAX / 2 seconds (about
// 146 years); a recorded clock beyond it is corrupt.
inline constexpr uint64_t kMaxClockNs = (uint64_t{INT64_MAX} / 1000000000 / 2) * 1000000000;

// At offset 0 of the metadata section.
struct ProcessRecord {
  int32_t pid;
  uint32_t umask;
  uint64_t pending_signals;
  RelPtr<ThreadRecord> threads;  // threads[0] is the thread-group leader
  RelPtr<AreaRecord> areas;      // sorted by start, non-overlapping
  RelPtr<PageRunRecord> page_runs;
  RelPtr<FileRecord> files;
  RelPtr<IntervalTimerRecord> itimers;
  RelPtr<PosixTimerRecord> posix_timers;
  RelPtr<uint64_t> auxv;
  uint32_t thread_count, area_count, page_run_count, file_count;
  uint32_t itimer_count, posix_timer_count, auxv_words;
  uint32_t reserved;
  StringRef cwd, exe;
  MmRecord mm;
  RlimitRecord rlimits[16];
  SignalActionRecord signals[64];  // signal n at index n-1
  ClockRecord clocks;

  std::span<const ThreadRecord> thread_records() const { return {threads.get(), thread_count}; }
  std::span<const AreaRecord> area_records() const { return {areas.get(), area_count}; }
  std::span<const FileRecord> file_records() const { return {files.get(), file_count}; }
  std::span<const IntervalTimerRecord> itimer_records() const {
    return {itimers.get(), itimer_count};
  }
  std::span<const PosixTimerRecord> posix_timer_records() const {
    return {posix_timers.get(), posix_timer_count};
  }
  std::span<const uint64_t> auxv_words_span() const { return {auxv.get(), auxv_words}; }
};
static_assert(sizeof(ProcessRecord) == 2544);
static_assert(offsetof(ProcessRecord, threads) == 16);
static_assert(offsetof(ProcessRecord, auxv) == 64);
static_assert(offsetof(ProcessRecord, thread_count) == 72);
static_assert(offsetof(ProcessRecord, cwd) == 104);
static_assert(offsetof(ProcessRecord, mm) == 136);
static_assert(offsetof(ProcessRecord, rlimits) == 224);
static_assert(offsetof(ProcessRecord, signals) == 480);
static_assert(offsetof(ProcessRecord, clocks) == 2528);

inline constexpr uint64_t AlignUp(uint64_t value, uint64_t align) {
  return (value + align - 1) / align * align;
}

}  // namespace ember::snapshot
