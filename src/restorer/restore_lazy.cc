// On-demand I/O reconnection in ember-restore (lazy_files.h has the mechanism): the regular files
// the plan marks kReopenLazy are not opened at restore. A reconnector process, cloned early from
// the restorer (so its copy of the address space holds only the restorer and the plan, whose
// paths the LazyFile entries point at), waits for the listener of the lazy filter, which the
// process installs once its eager fds are in place and before any thread exists (the filter is
// installed without TSYNC: threads created afterwards inherit it).
//
// The reconnector takes the plan's reconnector_pid (clone3 set_tid): a plain fork would take the
// namespace's next free pid, which may be a recorded tid StartThreads needs. In the reaper case
// the reaper is its parent (the restored process never sees it as a child); when the process is
// pid 1 itself, the process is.
#include <linux/sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "restorer/lazy_files.h"
#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

static_assert(snapshot::kPlanMaxLazyFiles == static_cast<uint32_t>(kMaxLazyFiles));

LazyFile g_lazy[kMaxLazyFiles];
int g_lazy_count = 0;
int g_handoff = -1;  // the restorer's end of the socket to the reconnector

}  // namespace

void StartReconnector() {
  const PlanHeader& p = *g_ctx.plan;
  if (p.reconnector_pid == 0) return;
  const auto* files = PlanTable<snapshot::PlanFile>(p.files_offset);
  for (uint32_t i = 0; i < p.file_count && g_lazy_count < kMaxLazyFiles; ++i) {
    const snapshot::PlanFile& f = files[i];
    if (f.source != snapshot::kFromPath || f.reopen != snapshot::kReopenLazy) continue;
    g_lazy[g_lazy_count++] = {f.fd, f.open_flags, f.offset, f.cloexec, PlanString(f.path_offset)};
  }
  if (g_lazy_count == 0) return;
  int sv[2] = {-1, -1};
  Check(RawSyscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                   reinterpret_cast<long>(sv)),
        snapshot::kStageLazyFiles, 0);
  for (int& fd : sv) fd = MoveAbove(fd);
  int32_t pid = p.reconnector_pid;
  struct clone_args args {};
  args.exit_signal = 0;  // nobody waits for it but pid 1's reaping
  args.set_tid = reinterpret_cast<uint64_t>(&pid);
  args.set_tid_size = 1;
  long child = Check(RawSyscall(SYS_clone3, reinterpret_cast<long>(&args), sizeof args),
                     snapshot::kStageLazyFiles, static_cast<uint64_t>(pid));
  if (child == 0) {
    RawSyscall(SYS_close, sv[0]);
    g_ctx.sync_fd = -1;  // its failures are its own; ServeLazyFiles closes the rest
    // The sandbox's identity without privileges, but not the sandbox's filter: it denies kcmp
    // and the listener's ioctls, and the reconnector confines itself.
    DropPrivileges(false, false);
    ServeLazyFiles(sv[1], g_lazy, g_lazy_count, -1);
  }
  RawSyscall(SYS_close, sv[1]);
  g_handoff = sv[0];
}

void CloseReconnectorHandoff() {
  if (g_handoff >= 0) RawSyscall(SYS_close, g_handoff);
  g_handoff = -1;
}

void HandOffLazyFiles() {
  if (g_handoff < 0) return;
  int listener = -1, placeholder = -1;
  Check(InstallLazyFiles(g_lazy, g_lazy_count, &listener, &placeholder), snapshot::kStageLazyFiles,
        0);
  Check(SendLazyHandoff(g_handoff, listener, placeholder), snapshot::kStageLazyFiles, 0);
  RawSyscall(SYS_close, listener);
  if (placeholder >= 0) RawSyscall(SYS_close, placeholder);
  CloseReconnectorHandoff();
}

}  // namespace ember::restorer
