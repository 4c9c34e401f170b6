// The executor of a restore plan (snapshot/restore_plan_format.h): the state ember-restore keeps
// while it rebuilds the process, and its steps, one file per concern:
//   main.cc             _start, the reaper pid 1, the order of the steps
//   parked.cc           a restore shell's wait for its instance
//   restore_memory.cc   prefetch, the vdso, unmapping, mapping areas, mm bounds
//   restore_files.cc    fds, cwd, umask, rlimits
//   restore_signals.cc  sigactions, interval and POSIX timers, the memory shim
//   restore_threads.cc  threads, per-thread state, credentials, the jump
//   report.cc           the report record on fd 6, failure exits, the clock
// Freestanding: raw syscalls only (syscall.h), no allocation, no libc; the plan is trusted (it
// comes from the host) and every step that fails reports {stage, errno, detail} and exits 125.
#pragma once

#include <stdint.h>

#include "restorer/syscall.h"
#include "snapshot/restore_plan_format.h"

namespace ember::restorer {

using snapshot::PlanHeader;

// fd sources the sandbox hands over on 0..3, moved above every recorded fd.
enum Source { kStdin = 0, kStdout, kStderr, kControl, kSourceCount };

struct Context {
  const PlanHeader* plan = nullptr;  // mapped at kPlanAddress
  int image_fd = -1;
  int report_fd = -1;
  int sync_fd = -1;  // to the reaper: one byte once a report is written; -1 without a reaper
  int sources[kSourceCount] = {-1, -1, -1, -1};
  uint64_t vdso_now = 0;  // AT_SYSINFO_EHDR of ember-restore
  uint64_t started_ns = 0;
  uint64_t phase_ns[snapshot::kReportPhases] = {};
};
extern Context g_ctx;

// Reports the failure (and tells the reaper) and exits the whole process with 125.
[[noreturn]] void Die(uint32_t stage, long ret, uint64_t detail = 0);
inline long Check(long ret, uint32_t stage, uint64_t detail = 0) {
  if (IsError(ret)) Die(stage, ret, detail);
  return ret;
}
void ReportSuccess();
uint64_t NowNs();
// Ends phase `phase`: phase_ns[phase] = now - *mark; *mark = now.
void EndPhase(uint32_t phase, uint64_t* mark);
[[noreturn]] void ExitGroup(int code);

// The plan sits at a fixed address (its frames hold absolute pointers), so these casts are the
// point, not an accident.
template <typename T>
const T* PlanTable(uint64_t offset) {
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  return reinterpret_cast<const T*>(snapshot::kPlanAddress + offset);
}
inline const char* PlanString(uint64_t offset) { return PlanTable<char>(offset); }

// strcmp() == 0, which the restorer does not have.
inline bool SameString(const char* a, const char* b) {
  for (; *a != '\0' && *a == *b; ++a, ++b) {
  }
  return *a == *b;
}

// restore_memory.cc
void PrefetchWorkingSet();
void MoveKernelAreasAside();
void UnmapAllButRestorer();
void MapAreas();
void PlaceKernelAreas();
void SetMmBounds();
// After MapAreas: where the image is mapped, the process's code and the formerly file-backed
// image mappings, as MapAreas mapped them (no /proc/self/maps walk at install).
struct MemoryShimConfig;
void FillShimConfig(MemoryShimConfig* config);

// restore_exe.cc: with kPlanSetExe, makes ember-restore's own file mappings anonymous and opens
// exe_path for PR_SET_MM_MAP; -1 without.
int OpenExeForMm();

// parked.cc: a restore shell (snapshot/shell_handoff.h) waits for its instance first.
bool IsParked(const uint64_t* initial_sp);
void AwaitHandoff();  // then fds 4, 5, 6 are the plan, the image and the report channel

// restore_files.cc
void MoveSandboxFds();  // before anything else: 0..6 above every recorded fd
// Moves `fd` above every recorded fd (and above 6); -1 if `fd` is not open.
int MoveAbove(int fd);
void InstallFiles();
void RestoreCwdUmaskRlimits();

// restore_lazy.cc: regular files reopened on first use (lazy_files.h)
void StartReconnector();         // early, before the process's memory: clones the reconnector
void HandOffLazyFiles();         // after the eager fds, before any thread: filter + handoff
void CloseReconnectorHandoff();  // the reaper's copy of the socket

// restore_signals.cc
void RestoreSigactions();
void RestoreItimers();
void RestorePosixTimers();  // after the threads exist (thread-directed timers)
void InstallShim();         // kOverlay: the memory shim, before any thread is created

// restore_threads.cc
void StartThreads();               // every thread but the leader, each waits at the gate
[[noreturn]] void ResumeLeader();  // opens the gate and jumps
// Capabilities, uid/gid, no_new_privs, seccomp for the calling thread (all are per thread).
// `dumpable`: the restored process is (it was, and the lazy reconnector's kcmp needs it); ember's
// own helpers (reaper, reconnector) are not, so the process cannot ptrace them.
void DropPrivileges(bool install_seccomp, bool dumpable);

}  // namespace ember::restorer
