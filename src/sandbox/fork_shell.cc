#include "sandbox/fork_shell.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/child.h"
#include "sys/syscalls.h"

namespace ember::sandbox {

ForkProcPlan BuildForkProcPlan(bool (*exists)(const char* path)) {
  ForkProcPlan plan;
  plan.all = BuildForkChildMounts(exists);
  // In the shell's namespace the prepared root is "/": the same targets, without the prefix.
  const std::string prefix = plan.all.root;
  auto unprefixed = [&prefix](const std::string& path) {
    return path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : path;
  };
  plan.all.staging.clear();
  plan.all.root = "/";
  for (MountStep& step : plan.all.steps) {
    step.target = unprefixed(step.target);
    if (step.op != MountOp::kMaskDir) step.source = unprefixed(step.source);
  }
  // BuildForkChildMounts' order: /proc, the masked files, the masked dirs, the read-only paths.
  for (const MountStep& step : plan.all.steps) {
    if (step.op == MountOp::kMount) continue;  // /proc itself: created detached, attached
    if (step.op == MountOp::kMaskDir) {
      plan.masked_dirs.push_back(step.target);
    } else if (plan.masked_dirs.empty() && step.op == MountOp::kBindOptional &&
               step.source == "/dev/null") {
      plan.files.steps.push_back(step);
    } else {
      plan.read_only.steps.push_back(step);
    }
  }
  for (MountPlan* part : {&plan.files, &plan.read_only}) part->root = "/";
  return plan;
}

unsigned long NamespaceShellCloneFlags() {
  // CLONE_VM: no copy of the template's page tables; CLONE_VFORK: the template sleeps until the
  // shell exits, so the two never run at once on the shared memory (the shell writes errno, its
  // stack and the task struct below, nothing else); CLONE_FILES: the fds the shell opens are the
  // template's. CLONE_NEWNS excludes CLONE_FS, so the pivot moves only the shell's root. No exit
  // signal: the template reaps the shell itself and its SIGCHLD handling sees only children.
  return CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
}

namespace {

// Shared by the template and the shell (CLONE_VM): the shell's inputs, its results and, on
// failure, the step and errno.
struct ShellTask {
  int layer = -1;
  int root = -1;
  const MountPlan* attach = nullptr;
  int mnt = -1;
  int ipc = -1;
  int uts = -1;
  const char* failed_step = nullptr;
  int error = 0;
};

int ShellFails(ShellTask* task, const char* step) noexcept {
  task->failed_step = step;
  task->error = errno;
  return 1;
}

// The shell task: allocates nothing and takes no lock (the template's allocator state is shared
// and frozen mid-call).
int ShellMain(void* arg) noexcept {
  auto* task = static_cast<ShellTask*>(arg);
  // /proc is still the template's here; after the pivot it is the new root's empty mount point.
  task->mnt = ::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (task->mnt < 0) return ShellFails(task, "open /proc/self/ns/mnt");
  task->ipc = ::open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
  if (task->ipc < 0) return ShellFails(task, "open /proc/self/ns/ipc");
  task->uts = ::open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
  if (task->uts < 0) return ShellFails(task, "open /proc/self/ns/uts");
  uint32_t failed = 0;
  if (int err = AttachForkRootfs(task->layer, task->root, *task->attach, &failed); err != 0) {
    errno = err;
    return ShellFails(task, failed == kAttachLayerStep ? "attach the prepared layer"
                                                       : "attach the prepared root");
  }
  // As plain boot does, but here rather than in the child: the detach waits for an RCU grace
  // period.
  if (!PivotIntoAndDetach(task->attach->root.c_str())) {
    return ShellFails(task, "pivot_root into the prepared root and detach the template's tree");
  }
  return 0;
}

}  // namespace

Result<UniqueFd> MakeMaskSource() {
  UniqueFd fs(static_cast<int>(::syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC)));
  if (!fs) return FailErrno("fsopen tmpfs (the /proc masks' empty dir)");
  auto set = [&fs](const char* key, const char* value) {
    unsigned cmd = value == nullptr ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING;
    return ::syscall(SYS_fsconfig, fs.get(), cmd, key, value, 0) == 0;
  };
  if (!set("mode", "0555") || !set("size", "4k") || !set("nr_inodes", "1") || !set("ro", nullptr) ||
      ::syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return FailErrno("configure the /proc masks' tmpfs");
  }
  int mnt = static_cast<int>(
      ::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (mnt < 0) return FailErrno("fsmount the /proc masks' tmpfs");
  return UniqueFd(mnt);
}

Result<NamespaceShell> MakeNamespaceShell(PreparedRootfs rootfs, const MountPlan& attach,
                                          std::span<char> stack) {
  if (!rootfs.ready()) return Fail(ErrorCode::kInvalidArgument, "no prepared rootfs");
  NamespaceShell shell;
  ShellTask task;
  task.layer = rootfs.layer.get();
  task.root = rootfs.root.get();
  task.attach = &attach;
  // The stack grows down from its 16-byte aligned end.
  char* top = stack.data() + stack.size();
  top -= reinterpret_cast<uintptr_t>(top) & 15;
  int pid = ::clone(&ShellMain, top, static_cast<int>(NamespaceShellCloneFlags()), &task);
  if (pid < 0) return FailErrno("clone the namespace shell");
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, __WALL);
  } while (waited < 0 && errno == EINTR);
  UniqueFd mnt(task.mnt), ipc(task.ipc), uts(task.uts);
  if (waited != pid) return FailErrno("wait for the namespace shell");
  if (task.failed_step != nullptr) {
    return FailErrno(std::string("namespace shell: ") + task.failed_step, task.error);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Fail(ErrorCode::kInternal,
                "namespace shell: ended with status " + std::to_string(status));
  }
  shell.mnt = std::move(mnt);
  shell.ipc = std::move(ipc);
  shell.uts = std::move(uts);
  return shell;
}

int JoinNamespaceShell(const ShellFds& shell, const ForkProcPlan& plan, uint32_t* failed) noexcept {
  // Still in the template's mount namespace, where a procfs is fully visible (see the header).
  // fsopen takes the pid namespace of the caller: the child's own.
  int fs = static_cast<int>(::syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC));
  if (fs < 0) {
    *failed = kCreateProcStep;
    return errno;
  }
  int proc = -1;
  if (::syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) {
    proc = static_cast<int>(::syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                                      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  }
  int err = proc < 0 ? errno : 0;
  ::close(fs);
  if (proc < 0) {
    *failed = kCreateProcStep;
    return err;
  }
  // Mount first: it sets the root and cwd to the shell's root.
  struct Join {
    int fd;
    int type;
    uint32_t step;
  };
  for (const Join& join : {Join{shell.mnt, CLONE_NEWNS, kJoinMountNsStep},
                           Join{shell.ipc, CLONE_NEWIPC, kJoinIpcNsStep},
                           Join{shell.uts, CLONE_NEWUTS, kJoinUtsNsStep}}) {
    if (::setns(join.fd, join.type) != 0) {
      err = errno;
      ::close(proc);
      *failed = join.step;
      return err;
    }
  }
  err = sys::MoveMount(proc, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) != 0 ? errno : 0;
  ::close(proc);
  if (err != 0) {
    *failed = 0;  // plan.all's first step: the /proc mount
    return err;
  }
  size_t step = 0;
  if (err = ApplyMountPlan(plan.files, &step); err != 0) {
    *failed = static_cast<uint32_t>(1 + step);
    return err;
  }
  const size_t dirs_start = 1 + plan.files.steps.size();
  for (size_t i = 0; i < plan.masked_dirs.size(); ++i) {
    *failed = static_cast<uint32_t>(dirs_start + i);
    // A clone keeps the source's read-only, nosuid, nodev, noexec; once attached, closing its fd
    // unmounts nothing.
    int mask = sys::OpenTree(shell.masked, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (mask < 0) {
      *failed = kCloneMaskStep;
      return errno;
    }
    err = sys::MoveMount(mask, "", AT_FDCWD, plan.masked_dirs[i].c_str(),
                         MOVE_MOUNT_F_EMPTY_PATH) != 0
              ? errno
              : 0;
    ::close(mask);
    if (err != 0) return err;
  }
  if (err = ApplyMountPlan(plan.read_only, &step); err != 0) {
    *failed = static_cast<uint32_t>(dirs_start + plan.masked_dirs.size() + step);
    return err;
  }
  return 0;
}

}  // namespace ember::sandbox
