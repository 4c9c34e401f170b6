// The restore plan: everything ember-restore (src/restorer, freestanding, no libc) needs to rebuild
// a checkpointed process, precomputed on the host by BuildRestorePlan (restore_plan.h) from an
// ImageReader image and the sandbox's RestoreSettings. The restorer only applies it: it parses
// nothing, allocates nothing and computes nothing but addresses it reads here. Page contents are
// not in the plan: they stay in the image (fd 5) at the file offsets the runs name.
//
// Freestanding-safe: <stdint.h>/<stddef.h> only, no std::, no pointers (offsets from the plan's
// start; the few absolute addresses are for the plan mapped at kPlanAddress, which is fixed).
//
//  plan offset                                   little-endian, x86-64
//  0     ┌──────────────────────────────────────┐
//        │ PlanHeader (4096 B, one page)         │ magic "EMBRPLAN", version, total size, flags,
//        │                                       │ pid, uid/gid, umask, mm bounds, rlimits,
//        │                                       │ sigactions, the checkpoint's clocks, the
//        │                                       │ vdso/vvar placement and the (count, offset)
//        │                                       │ of every table below
//  4096  ├──────────────────────────────────────┤
//        │ PlanArea   × area_count   (56 B)     │ in the recorded order (ascending start)
//        │ PlanRun    × run_count    (24 B)     │ stored page runs, area by area
//        │ PlanFile   × file_count   (32 B)     │ ascending fd
//        │ PlanThread × thread_count (96 B)     │ threads[0] = the leader (its frame is used last)
//        │ PlanItimer × itimer_count (24 B)     │
//        │ PlanPosixTimer × count    (48 B)     │
//        │ PlanRange  × prefetch_count (16 B)   │ coalesced image ranges of the working set
//        │ seccomp filter: 8 B × seccomp_len    │ struct sock_filter[], installed as is
//        │ auxv: uint64 × auxv_words            │
//        │ strings: NUL-terminated paths        │
//        │ frames (64-aligned): per thread a     │ kernel ucontext (rt_sigreturn reads it at
//        │   PlanFrame, then its xsave area      │ rsp) then the fpstate it points at (absolute:
//        │   (+4 B FP_XSTATE_MAGIC2)             │ kPlanAddress + offset)
//  end   └──────────────────────────────────────┘ == header.total_size (<= kPlanMaxBytes)
//
// Every offset is checked by the builder to lie inside the plan; the restorer trusts the plan
// (it comes from the trusted host over a sealed memfd) but still checks magic, version and size.
//
// The restorer's own address range [kRestorerBase, kRestorerBase + kRestorerSpan) holds its
// binary, its stacks, the plan and a scratch slot for the kernel's vdso; the plan refuses an
// image with an area there.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace ember::snapshot {

inline constexpr uint64_t kRestorerBase = 0x100000000000ULL;  // = EMBER_RESTORER_BASE (CMake)
inline constexpr uint64_t kRestorerSpan = 1ULL << 30;
// Inside the range: the binary (text, data, bss with the main stack) first, then:
inline constexpr uint64_t kThreadStacksAddress = kRestorerBase + (16ULL << 20);
inline constexpr uint64_t kThreadStackBytes = 32ULL * 1024;
inline constexpr uint64_t kVdsoScratchAddress = kRestorerBase + (200ULL << 20);  // 8 MiB slot
inline constexpr uint64_t kVdsoScratchBytes = 8ULL << 20;
inline constexpr uint64_t kSharedPageAddress = kRestorerBase + (220ULL << 20);  // futex words
inline constexpr uint64_t kPlanAddress = kRestorerBase + (256ULL << 20);
inline constexpr uint64_t kPlanMaxBytes = 768ULL << 20;
inline constexpr uint32_t kPlanMaxThreads = 4096;   // stacks: 4096 × 32 KiB = 128 MiB
inline constexpr uint32_t kPlanMaxLazyFiles = 128;  // = restorer::kMaxLazyFiles (lazy_files.h)

inline constexpr char kPlanMagic[8] = {'E', 'M', 'B', 'R', 'P', 'L', 'A', 'N'};
inline constexpr uint32_t kPlanVersion = 2;  // 2: PlanHeader::checkpoint_clocks

// PlanHeader::flags
inline constexpr uint32_t kPlanCopyMemory = 1u << 0;     // kCopy: anonymous + pread, else overlay
inline constexpr uint32_t kPlanTimeNamespace = 1u << 1;  // enter a fresh time namespace
inline constexpr uint32_t kPlanPrefetch = 1u << 2;       // readahead the working set first
inline constexpr uint32_t kPlanSetExe = 1u << 3;         // exe_path: /proc/self/exe (see main.cc)

// PlanArea::kind (AreaKind of process_state.h, same values)
enum PlanAreaKind : uint8_t {
  kPlanAnonymous = 0,
  kPlanFilePrivate = 1,
  kPlanFileShared = 2,
  kPlanStack = 3,
  kPlanVdso = 4,
  kPlanVvar = 5,
  kPlanVvarVclock = 6,
};

struct PlanArea {
  uint64_t start, end;  // page aligned, end exclusive
  int32_t prot;         // PROT_* to leave it with
  int32_t map_flags;    // MAP_SHARED or MAP_PRIVATE (| MAP_GROWSDOWN for the stack)
  uint8_t kind;         // PlanAreaKind
  uint8_t dontdump;     // MADV_DONTDUMP after mapping
  uint16_t reserved0;
  uint32_t run_count;  // its runs: runs[first_run, first_run + run_count)
  uint32_t first_run;
  uint32_t path_offset;  // file areas: NUL-terminated path (plan offset); else 0
  uint64_t file_offset;  // file areas: offset in that file
  uint64_t reserved1;
};
static_assert(sizeof(PlanArea) == 56);

// Stored pages: [address, address + length) of the restored memory hold the image's bytes at
// image_offset (page aligned; length a multiple of 4096).
struct PlanRun {
  uint64_t address;
  uint64_t length;
  uint64_t image_offset;
};
static_assert(sizeof(PlanRun) == 24);

// PlanFile::source: where the fd comes from.
enum PlanFileSource : uint8_t {
  kFromPath = 0,   // open(path, open_flags), lseek(offset)
  kFromStdin = 1,  // the restorer's fd 0 / 1 / 2 / 3 as the sandbox handed them over
  kFromStdout = 2,
  kFromStderr = 3,
  kFromControl = 4,
};
// PlanFile::reopen: eager (opened before the task resumes) or lazy (on first use, lazy_files.h).
enum PlanReopen : uint8_t { kReopenEager = 0, kReopenLazy = 1 };

struct PlanFile {
  int32_t fd;          // the recorded number
  uint8_t source;      // PlanFileSource
  uint8_t cloexec;     // 0 or 1
  uint8_t reopen;      // PlanReopen (kFromPath only)
  uint8_t kind;        // FileKind of process_state.h
  int32_t open_flags;  // O_* (no O_CREAT/O_TRUNC/O_EXCL), kFromPath only
  uint32_t path_offset;
  uint64_t offset;  // file position, kFromPath only
  uint64_t reserved;
};
static_assert(sizeof(PlanFile) == 32);

struct PlanThread {
  int32_t tid;
  uint32_t reserved0;
  uint64_t frame_offset;  // plan offset of its PlanFrame: rsp for rt_sigreturn
  uint64_t fs_base, gs_base;
  uint64_t clear_child_tid;
  uint64_t robust_list, robust_list_len;
  uint64_t rseq_addr;  // 0 = not registered
  uint32_t rseq_len, rseq_sig;
  uint64_t reserved1[3];
};
static_assert(sizeof(PlanThread) == 96);

struct PlanItimer {
  int32_t which;
  uint32_t reserved;
  uint64_t interval_ns, value_ns;
};
static_assert(sizeof(PlanItimer) == 24);

struct PlanPosixTimer {
  int32_t id, clock_id, signal, notify;
  uint64_t sigev_value;
  uint64_t interval_ns, value_ns;
  int32_t notify_tid;
  uint32_t reserved;
};
static_assert(sizeof(PlanPosixTimer) == 48);

struct PlanRange {
  uint64_t image_offset, length;
};
static_assert(sizeof(PlanRange) == 16);

// The kernel's struct ucontext (x86-64) as rt_sigreturn reads it at rsp, with uc_mcontext laid
// out as struct sigcontext. fpstate holds the absolute address of the xsave area that follows.
struct PlanFrame {
  uint64_t uc_flags;  // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
  uint64_t uc_link;
  uint64_t ss_sp;  // uc_stack: the alternate signal stack, set by rt_sigreturn
  int32_t ss_flags;
  int32_t ss_pad;
  uint64_t ss_size;
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
  uint16_t cs, gs, fs, ss;
  uint64_t err, trapno, oldmask, cr2;
  uint64_t fpstate;
  uint64_t reserved1[8];
  uint64_t uc_sigmask;  // the blocked signals after the jump
};
static_assert(sizeof(PlanFrame) == 304);
static_assert(offsetof(PlanFrame, r8) == 40);
static_assert(offsetof(PlanFrame, fpstate) == 40 + 184);
static_assert(offsetof(PlanFrame, uc_sigmask) == 296);

struct PlanSigaction {  // the kernel's struct sigaction for rt_sigaction
  uint64_t handler, flags, restorer, mask;
};

struct PlanRlimit {
  uint64_t cur, max;
};

// The kernel's struct prctl_mm_map minus the pointer fields, which the restorer fills in.
struct PlanMm {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
};

// The image's ClockRecord: the clocks the restorer's time namespace must not go below. With
// kPlanTimeNamespace the restorer sets each clock's offset to max(0, recorded - its now)
// (src/restorer/time_offsets.h says why); 0 = not recorded, the offset stays 0.
struct PlanClocks {
  uint64_t monotonic_ns;
  uint64_t boottime_ns;
};
static_assert(sizeof(PlanClocks) == 16);

struct PlanHeader {
  char magic[8];  // kPlanMagic
  uint32_t version;
  uint32_t header_size;  // sizeof(PlanHeader)
  uint64_t total_size;
  uint32_t flags;  // kPlan*
  int32_t pid;     // the recorded pid; 1 = become it, else a reaper pid 1 clones it
  uint32_t uid, gid;
  uint32_t umask;
  int32_t max_fd;            // highest recorded fd (the restorer keeps its own fds above it)
  uint32_t exe_path_offset;  // kPlanSetExe: the path /proc/self/exe should show
  uint32_t cwd_offset;

  uint32_t area_count, run_count, file_count, thread_count;
  uint32_t itimer_count, posix_timer_count, prefetch_count, seccomp_len;
  uint32_t auxv_words;
  int32_t reconnector_pid;  // lazy files: the pid the reconnector takes (no recorded tid); else 0
  uint64_t areas_offset, runs_offset, files_offset, threads_offset;
  uint64_t itimers_offset, posix_timers_offset, prefetch_offset, seccomp_offset, auxv_offset;
  uint64_t xsave_size;  // bytes of each thread's xsave area

  // The kernel's special mappings as recorded; the current ones sit at the same distances
  // from the current vdso (same kernel build: CheckCompat), so the restorer finds them from
  // AT_SYSINFO_EHDR. start == 0: the image had none of that kind.
  uint64_t vdso_start, vdso_end, vvar_start, vvar_end, vclock_start, vclock_end;

  PlanMm mm;
  PlanRlimit rlimits[16];
  PlanSigaction sigactions[64];  // signal n at index n-1
  PlanClocks checkpoint_clocks;
  uint8_t padding[4096 - 2632];
};
static_assert(sizeof(PlanHeader) == 4096);
static_assert(offsetof(PlanHeader, mm) == 224);
static_assert(offsetof(PlanHeader, sigactions) == 568);
static_assert(offsetof(PlanHeader, checkpoint_clocks) == 2616);

// What ember-restore writes on fd 6: one record, on failure (then exit 125) or on success
// (then the fd is closed just before the jump). A reaper pid 1 writes kStageTaskDied for a
// restored task that died before writing any record (detail = its wait status).
enum RestoreStage : uint32_t {
  kStageSuccess = 0,
  kStageReadPlan,
  kStageMoveFds,
  kStageTimeNamespace,  // detail: the clock id whose offset failed, 0 for unshare/setns
  kStageCloneProcess,
  kStagePrefetch,
  kStageMoveVdso,  // detail: the kernel area's address
  kStageUnmap,
  kStageMapArea,   // detail: the area's start
  kStageFillArea,  // detail: the run's address
  kStageProtectArea,
  kStagePlaceVdso,
  kStageSetMm,
  kStageOpenFile,  // detail: the fd number
  kStageCwd,
  kStageRlimit,     // detail: the resource
  kStageSigaction,  // detail: the signal
  kStageItimer,
  kStagePosixTimer,  // detail: the timer id
  kStageMemoryShim,
  kStageCloneThread,  // detail: the tid
  kStageThreadState,  // detail: the tid
  kStageCredentials,
  kStageCapabilities,
  kStageNoNewPrivs,
  kStageSeccomp,
  kStageSigreturn,
  kStageTaskDied,
  kStageLazyFiles,     // detail: the reconnector's pid
  kStageShellHandoff,  // a restore shell's hostname (shell_handoff.h)
  kStageCount,
};

inline constexpr uint32_t kReportMagic = 0x54505245;  // "ERPT"
inline constexpr uint32_t kReportPhases = 6;
// RestoreReport::phase_ns index
enum RestorePhase : uint32_t {
  kPhaseSetup = 0,  // plan, fds, namespaces, clone
  kPhaseMemory,     // prefetch, unmap, map, fill, protect, vdso, mm
  kPhaseFiles,      // fds, cwd, umask, rlimits
  kPhaseSignals,    // sigactions, itimers, shim
  kPhaseThreads,    // thread clones, POSIX timers
  kPhaseTotal,      // exec of ember-restore (its first instruction) to the jump
};

struct RestoreReport {
  uint32_t magic;  // kReportMagic
  uint32_t stage;  // RestoreStage
  int32_t error;   // errno (positive), 0 on success
  uint32_t reserved;
  uint64_t detail;
  uint64_t phase_ns[kReportPhases];
};
static_assert(sizeof(RestoreReport) == 72);

}  // namespace ember::snapshot
