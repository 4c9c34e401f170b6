// ember-restore: exec'ed as pid 1 of a fresh restore sandbox (after its mounts and pivot_root,
// with the capabilities it needs and no seccomp filter yet), it turns the plan on fd 4 and the
// image on fd 5 into the checkpointed process and jumps into it. fds: 0-2 the instance's stdio,
// 3 its control channel (or closed), 4 the plan (sealed memfd), 5 the image, 6 the report
// channel (or closed). Nothing is ever printed on 0-2.
//
// A restore shell (snapshot/shell_handoff.h) runs it with argv[1] = "--parked" and a socket on
// fd 4: it first waits there for the plan, image and report fds and the instance's hostname.
//
// Order (each step's file says why within it):
//   1. plan        map fd 4 at kPlanAddress (inside the restorer's range, where nothing of the
//                  process goes), block every signal;
//   2. fds         move 0-6 above every recorded fd (restore_files.cc);
//   3. pid         recorded pid 1: become it. Otherwise stay pid 1 as a minimal reaper and
//                  clone3(set_tid = {pid}) the process; the reaper forwards a crash of the
//                  restore as a report, reaps, and exits with the process's status;
//                  With lazy files the reconnector is cloned here too, before the process.
//   4. time ns     unshare(CLONE_NEWTIME), its clock offsets set so that no clock reads below
//                  the checkpoint's (time_offsets.h; 0 on the boot the image was taken on) —
//                  before the clone, so the child is born in it; pid 1 itself enters it with setns;
//   5. memory      (restore_memory.cc), 6. files, cwd, umask, rlimits (restore_files.cc); the
//                  lazy files' filter, its listener handed to the reconnector (restore_lazy.cc),
//   7. signals     sigactions, itimers, memory shim (restore_signals.cc) — the shim before any
//                  thread, which inherits its filter;
//   8. threads     created, each waits at a gate; POSIX timers once every tid exists;
//   9. jump        success report, privileges dropped per thread, gate opened, rt_sigreturn.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "restorer/restorer.h"
#include "restorer/time_offsets.h"

namespace {
constexpr unsigned long kMainStackBytes = 256UL * 1024;
}  // namespace

// The restorer's stack lives in its own bss: the kernel's stack is outside the restorer's range
// and is unmapped with everything else.
extern "C" {
alignas(16) unsigned char g_ember_main_stack[kMainStackBytes];
[[noreturn]] void EmberRestorerMain(const uint64_t* initial_sp);
}

__asm__(R"(
  .text
  .globl _start
  .type _start, @function
_start:
  xor %ebp, %ebp
  mov %rsp, %rdi
  lea g_ember_main_stack+262144(%rip), %rsp
  and $-16, %rsp
  call EmberRestorerMain
  ud2
)");

namespace ember::restorer {
namespace {

constexpr int kPlanFd = 4;
constexpr uint64_t kAtSysinfoEhdr = 33;

uint64_t FindVdso(const uint64_t* sp) {
  uint64_t argc = sp[0];
  const uint64_t* p = sp + 1 + argc + 1;  // argv, NULL
  while (*p != 0) ++p;                    // envp
  for (++p; p[0] != 0; p += 2) {
    if (p[0] == kAtSysinfoEhdr) return p[1];
  }
  return 0;
}

void MapPlan() {
  long size_or_error = RawSyscall(SYS_lseek, kPlanFd, 0, SEEK_END);
  Check(size_or_error, snapshot::kStageReadPlan, 0);
  auto size = static_cast<uint64_t>(size_or_error);
  if (size < sizeof(PlanHeader) || size > snapshot::kPlanMaxBytes) {
    Die(snapshot::kStageReadPlan, -22 /* EINVAL */, size);
  }
  // Private and writable: nothing writes it, but the frames' pages may be touched by the kernel
  // (rt_sigreturn only reads; a private mapping costs nothing until written).
  Check(RawSyscall(SYS_mmap, static_cast<long>(snapshot::kPlanAddress), static_cast<long>(size),
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, kPlanFd, 0),
        snapshot::kStageReadPlan, 0);
  const auto* plan = PlanTable<PlanHeader>(0);
  if (memcmp(plan->magic, snapshot::kPlanMagic, sizeof plan->magic) != 0 ||
      plan->version != snapshot::kPlanVersion || plan->total_size != size ||
      plan->header_size != sizeof(PlanHeader) || plan->thread_count == 0) {
    Die(snapshot::kStageReadPlan, -22 /* EINVAL */, plan->version);
  }
  g_ctx.plan = plan;
}

void EnterTimeNamespace(bool self) {
  if (!(g_ctx.plan->flags & snapshot::kPlanTimeNamespace)) return;
  Check(RawSyscall(SYS_unshare, CLONE_NEWTIME), snapshot::kStageTimeNamespace, 0);
  // Offsets can be set only until a first task enters the namespace (setns below, or the clone
  // of the reconnector or the process): now.
  SetTimeOffsets(g_ctx.plan->checkpoint_clocks);
  if (!self) return;  // children are born in it
  long fd = Check(
      RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/ns/time_for_children"),
                 O_RDONLY | O_CLOEXEC),
      snapshot::kStageTimeNamespace, 0);
  Check(RawSyscall(SYS_setns, fd, CLONE_NEWTIME), snapshot::kStageTimeNamespace, 0);
  RawSyscall(SYS_close, fd);
}

// Pid 1 of the sandbox while the process runs as the recorded pid: reaps every orphan of the
// namespace and exits with the process's status. It keeps no fd of the instance (its stdio and
// control channel must see EOF when the process closes them), no privilege, runs under the
// sandbox's seccomp filter (it needs read, close, wait4, write, exit_group) and is not dumpable
// (the process, same uid, must not be able to ptrace it).
[[noreturn]] void Reap(long child, int sync_read) {
  int report = g_ctx.report_fd;
  for (int& source : g_ctx.sources) {
    if (source >= 0) RawSyscall(SYS_close, source);
  }
  RawSyscall(SYS_close, g_ctx.image_fd);
  CloseReconnectorHandoff();  // the process has its own copy; the reconnector needs one peer
  // The sandbox's filter too: the reaper lives as long as the instance, next to it.
  DropPrivileges(true, false);
  char byte = 0;
  long n;
  do {
    n = RawSyscall(SYS_read, sync_read, reinterpret_cast<long>(&byte), 1);
  } while (n == -4 /* EINTR */);
  RawSyscall(SYS_close, sync_read);
  int status = 0;
  bool exited = false;
  if (n != 1) {
    // The process's end of the pipe closed without a report: the restore crashed.
    Check(RawSyscall(SYS_wait4, child, reinterpret_cast<long>(&status), __WALL, 0),
          snapshot::kStageTaskDied, 0);
    g_ctx.sync_fd = -1;
    Die(snapshot::kStageTaskDied, 0, static_cast<uint64_t>(status));
  }
  if (report >= 0) RawSyscall(SYS_close, report);
  while (!exited) {
    long pid = RawSyscall(SYS_wait4, -1, reinterpret_cast<long>(&status), __WALL, 0);
    if (pid == -4) continue;
    if (IsError(pid)) ExitGroup(125);  // no children left: cannot happen before `child`
    exited = pid == child;
  }
  ExitGroup(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

[[noreturn]] void RestoreProcess(uint64_t mark) {
  PrefetchWorkingSet();
  MoveKernelAreasAside();
  UnmapAllButRestorer();
  MapAreas();
  PlaceKernelAreas();
  SetMmBounds();
  EndPhase(snapshot::kPhaseMemory, &mark);
  InstallFiles();
  RestoreCwdUmaskRlimits();
  HandOffLazyFiles();
  EndPhase(snapshot::kPhaseFiles, &mark);
  RestoreSigactions();
  RestoreItimers();
  InstallShim();
  EndPhase(snapshot::kPhaseSignals, &mark);
  StartThreads();
  RestorePosixTimers();
  EndPhase(snapshot::kPhaseThreads, &mark);
  ResumeLeader();
}

}  // namespace
}  // namespace ember::restorer

extern "C" [[noreturn]] void EmberRestorerMain(const uint64_t* initial_sp) {
  using namespace ember::restorer;  // NOLINT(google-build-using-namespace)
  namespace snapshot = ember::snapshot;
  if (IsParked(initial_sp)) AwaitHandoff();  // a restore shell: until it is given an instance
  g_ctx.started_ns = NowNs();
  g_ctx.report_fd = 6;  // until it is moved: early failures still reach the host
  uint64_t all = ~0ULL;
  RawSyscall(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, 8);
  g_ctx.vdso_now = FindVdso(initial_sp);
  MapPlan();
  MoveSandboxFds();
  uint64_t mark = NowNs();
  bool become = g_ctx.plan->pid == 1;
  EnterTimeNamespace(become);
  StartReconnector();
  if (become) {
    EndPhase(snapshot::kPhaseSetup, &mark);
    RestoreProcess(mark);
  }
  int sync[2] = {-1, -1};
  Check(RawSyscall(SYS_pipe2, reinterpret_cast<long>(sync), O_CLOEXEC),
        snapshot::kStageCloneProcess, 0);
  // Above every recorded fd, like the sandbox's: InstallFiles must not land on them.
  for (int& fd : sync) fd = MoveAbove(fd);
  int32_t pid = g_ctx.plan->pid;
  struct clone_args args {};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&pid);
  args.set_tid_size = 1;
  long child = Check(RawSyscall(SYS_clone3, reinterpret_cast<long>(&args), sizeof args),
                     snapshot::kStageCloneProcess, static_cast<uint64_t>(pid));
  if (child == 0) {
    RawSyscall(SYS_close, sync[0]);
    g_ctx.sync_fd = sync[1];
    EndPhase(snapshot::kPhaseSetup, &mark);
    RestoreProcess(mark);
  }
  RawSyscall(SYS_close, sync[1]);
  Reap(child, sync[0]);
}
