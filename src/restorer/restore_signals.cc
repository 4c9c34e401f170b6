// Signal actions, interval timers, POSIX timers and the memory shim.
//
// Every signal stays blocked in the restorer (main.cc blocks all first): the actions installed
// here point into the restored process's code, which must not run before the jump. Each
// thread's own mask comes back with its rt_sigreturn frame.
#include <linux/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "restorer/restorer.h"
#if __has_include("restorer/memory_shim.h")
#include "restorer/memory_shim.h"
#define EMBER_HAVE_MEMORY_SHIM 1
#endif

namespace ember::restorer {
namespace {

using snapshot::PlanItimer;
using snapshot::PlanPosixTimer;

// 6.18: timer_create takes the id to create from *created_timer_id while this is on.
constexpr int kPrTimerCreateRestoreIds = 77;
constexpr int kRestoreIdsOff = 0, kRestoreIdsOn = 1;
constexpr uint64_t kNsPerSec = 1000000000ULL;
constexpr int kSigevThreadId = 4;

struct KernelTimeval {
  int64_t sec, usec;
};
struct KernelItimerval {
  KernelTimeval interval, value;
};
struct KernelTimespec {
  int64_t sec, nsec;
};
struct KernelItimerspec {
  KernelTimespec interval, value;
};
struct KernelSigevent {  // the kernel's struct sigevent (64 bytes)
  uint64_t value;
  int32_t signo;
  int32_t notify;
  int32_t tid;  // SIGEV_THREAD_ID
  int32_t pad[11];
};
static_assert(sizeof(KernelSigevent) == 64);

KernelTimeval ToTimeval(uint64_t ns) {
  return {static_cast<int64_t>(ns / kNsPerSec), static_cast<int64_t>(ns % kNsPerSec / 1000)};
}
KernelTimespec ToTimespec(uint64_t ns) {
  return {static_cast<int64_t>(ns / kNsPerSec), static_cast<int64_t>(ns % kNsPerSec)};
}

}  // namespace

void RestoreSigactions() {
  const PlanHeader& p = *g_ctx.plan;
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    // Every one, defaults too: SIG_IGN survives the exec of ember-restore, so "as it is now"
    // may not be what was recorded.
    const snapshot::PlanSigaction& a = p.sigactions[sig - 1];
    Check(RawSyscall(SYS_rt_sigaction, sig, reinterpret_cast<long>(&a), 0, 8),
          snapshot::kStageSigaction, static_cast<uint64_t>(sig));
  }
}

void RestoreItimers() {
  const PlanHeader& p = *g_ctx.plan;
  const PlanItimer* timers = PlanTable<PlanItimer>(p.itimers_offset);
  for (uint32_t i = 0; i < p.itimer_count; ++i) {
    const PlanItimer& t = timers[i];
    if (t.value_ns == 0) continue;  // disarmed
    KernelItimerval value{ToTimeval(t.interval_ns), ToTimeval(t.value_ns)};
    Check(RawSyscall(SYS_setitimer, t.which, reinterpret_cast<long>(&value), 0),
          snapshot::kStageItimer, static_cast<uint64_t>(t.which));
  }
}

void RestorePosixTimers() {
  const PlanHeader& p = *g_ctx.plan;
  if (p.posix_timer_count == 0) return;
  const PlanPosixTimer* timers = PlanTable<PlanPosixTimer>(p.posix_timers_offset);
  Check(RawSyscall(SYS_prctl, kPrTimerCreateRestoreIds, kRestoreIdsOn, 0, 0, 0),
        snapshot::kStagePosixTimer, 0);
  for (uint32_t i = 0; i < p.posix_timer_count; ++i) {
    const PlanPosixTimer& t = timers[i];
    KernelSigevent event{};
    event.value = t.sigev_value;
    event.signo = t.signal;
    event.notify = t.notify;
    if ((t.notify & kSigevThreadId) != 0) event.tid = t.notify_tid;
    int32_t id = t.id;  // the id to create (PR_TIMER_CREATE_RESTORE_IDS)
    Check(RawSyscall(SYS_timer_create, t.clock_id, reinterpret_cast<long>(&event),
                     reinterpret_cast<long>(&id)),
          snapshot::kStagePosixTimer, static_cast<uint64_t>(t.id));
    if (id != t.id) Die(snapshot::kStagePosixTimer, -17 /* EEXIST: got another id */, t.id);
    if (t.value_ns == 0) continue;
    KernelItimerspec value{ToTimespec(t.interval_ns), ToTimespec(t.value_ns)};
    Check(RawSyscall(SYS_timer_settime, id, 0, reinterpret_cast<long>(&value), 0),
          snapshot::kStagePosixTimer, static_cast<uint64_t>(t.id));
  }
  RawSyscall(SYS_prctl, kPrTimerCreateRestoreIds, kRestoreIdsOff, 0, 0, 0);
}

void InstallShim() {
#ifdef EMBER_HAVE_MEMORY_SHIM
  if (g_ctx.plan->flags & snapshot::kPlanCopyMemory) return;  // nothing is image-backed
  struct stat st {};
  Check(RawSyscall(SYS_fstat, g_ctx.image_fd, reinterpret_cast<long>(&st)),
        snapshot::kStageMemoryShim, 0);
  MemoryShimConfig config{st.st_dev, st.st_ino};
  FillShimConfig(&config);
  long r = InstallMemoryShim(config);
  // -ENOENT: no area had pages mapped from the image, so nothing is image-backed: nothing to
  // shim.
  if (r == -2) return;
  Check(r, snapshot::kStageMemoryShim, 0);
#endif
}

}  // namespace ember::restorer
