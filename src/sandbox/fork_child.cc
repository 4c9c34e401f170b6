#include "sandbox/fork_child.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/fork_rootfs.h"

namespace ember::sandbox {
bool ProcPathExists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0;
}

ChildPlan BuildForkChildPlan(const SandboxSpec& spec, const BpfProgram* seccomp, int cap_last_cap) {
  SandboxSpec child = spec;
  child.fork_template = false;
  // The exec fields are unused (the child is already running the agent); BuildChildPlan still
  // wants a command.
  if (child.argv.empty()) child.argv = {"/.ember/ember-agent"};
  const std::array<int, kInheritedFds> unused_fds = {0, 1, 2, -1, -1, -1, -1};
  ChildPlan plan = BuildChildPlan(child, "", seccomp, cap_last_cap, unused_fds);
  plan.mounts = BuildForkChildMounts(&ProcPathExists);
  return plan;
}

ChildPlan ForkShellChildPlan(const ChildPlan& plan) {
  ChildPlan shell = plan;
  shell.mounts = MountPlan{};
  shell.mounts.root = "/";
  shell.pivot_root = false;
  return shell;
}

unsigned long ForkCloneFlags(bool with_shell) {
  return with_shell ? CLONE_NEWPID : CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
}

bool EnterForkedSandbox(ChildPlan& plan, const std::string& hostname, const SpawnFds& fds,
                        ChildReport* report) noexcept {
  // "0" is the writing process itself; the fds were opened by the daemon, whose credentials the
  // kernel checks for the move.
  for (size_t i = 0; i < fds.cgroup_count; ++i) {
    if (::write(fds.cgroup_procs[i], "0", 1) != 1) {
      return ChildFailed(report, ChildStage::kJoinCgroup, errno, static_cast<uint32_t>(i));
    }
  }
  if (fds.netns >= 0 && ::setns(fds.netns, CLONE_NEWNET) != 0) {
    return ChildFailed(report, ChildStage::kJoinNetwork, errno);
  }
  // Only now, inside its cgroup, so that the cgroup namespace is rooted there.
  if (::unshare(CLONE_NEWCGROUP) != 0) {
    return ChildFailed(report, ChildStage::kUnshareCgroup, errno);
  }
  // Without a prepared rootfs, plan.mounts is BuildForkMountPlan's: the child builds it all.
  if (fds.shell.mnt >= 0) {
    uint32_t failed = 0;
    if (int err = JoinNamespaceShell(fds.shell, *fds.shell_proc, &failed); err != 0) {
      return ChildFailed(report, ChildStage::kMount, err, failed);
    }
  } else if (fds.rootfs_layer >= 0) {
    uint32_t failed = 0;
    if (int err = AttachForkRootfs(fds.rootfs_layer, fds.rootfs_root, plan.mounts, &failed);
        err != 0) {
      return ChildFailed(report, ChildStage::kMount, err, failed);
    }
  }
  plan.hostname = hostname;
  plan.inherited[0] = 0;  // the template's stdin, /dev/null
  plan.inherited[1] = fds.log;
  plan.inherited[2] = fds.log;
  plan.inherited[3] = fds.control;
  // The pooled namespace already has lo in the state the function's policy asks for.
  plan.loopback_up = false;
  return FinishSandbox(plan, /*layer_sink=*/-1, report);
}

}  // namespace ember::sandbox
