// Fork boot, sandbox side: what a child forked from a template does, before any function code
// runs in it, to end up exactly as isolated as a plain-boot sandbox (DESIGN.md, "fork boot").
//
// The template is an ordinary sandbox that kept TemplateCapabilities() in its user namespace.
// For each spawn request it clones a child into a new pid namespace (the child is pid 1 of it and
// shares the template's user namespace, hence its id mapping) and, when the template made them
// ahead (a namespace shell, fork_shell.h), the child joins new mount, ipc and uts namespaces
// with its rootfs already in place; without one it is cloned into new ones too. The child then:
//   1. writes itself into its pooled cgroup through cgroup.procs fds the daemon opened (the
//      kernel checks the opener's credentials, so the child needs no access to the host's
//      cgroupfs), then unshares its cgroup namespace rooted there;
//   2. joins a pre-made network namespace from the pool (owned by the template's user namespace);
//   3. joins its shell's namespaces, where its root is the rootfs its template prepared for it
//      (fork_rootfs.h: the template's files as the lower layer of an overlay on a fresh tmpfs,
//      /dev with fresh /dev/pts and /dev/shm, the binds), and mounts a fresh /proc; without a
//      shell it attaches that rootfs itself, mounts /proc and pivots into it. It sets its
//      hostname, rlimits, drops every capability, switches to the function's user, installs its
//      fds (0: the template's /dev/null, 1-2: its log, 3: its control socket) and a seccomp
//      filter that, on top of the template's, leaves exactly strict (fork_seccomp.h).
// Everything comes from a ChildPlan computed in the template before it froze. The child is a
// fork of a single-threaded process, so unlike the plain-boot child it may allocate.
#pragma once

#include <cstddef>
#include <string>

#include "sandbox/child.h"
#include "sandbox/fork_shell.h"
#include "sandbox/seccomp.h"
#include "sandbox/spec.h"

namespace ember::sandbox {

// The per-spawn resources the daemon sends with a spawn request.
struct SpawnFds {
  int control = -1;  // becomes fd 3
  int log = -1;      // becomes fds 1 and 2
  int netns = -1;    // -1: stay in the template's network namespace (tests only)
  static constexpr size_t kMaxCgroupFds = 4;
  int cgroup_procs[kMaxCgroupFds] = {-1, -1, -1, -1};  // cgroup.procs of each hierarchy
  size_t cgroup_count = 0;
  // Not the daemon's: the detached trees the template prepared for this child (fork_rootfs.h);
  // -1 when it could not (an older kernel), and the plan's mounts are BuildForkMountPlan's.
  int rootfs_layer = -1;
  int rootfs_root = -1;
  // The namespaces the template made ahead for this child (fork_shell.h), which then has its
  // rootfs already: the rootfs fds above are -1, and the plan neither mounts nor pivots
  // (ForkShellChildPlan). `shell_proc` is the template's ForkProcPlan.
  ShellFds shell;
  const ForkProcPlan* shell_proc = nullptr;
};

// The plan every child of a template follows. `spec` is the template's own spec: its limits,
// rlimits, user, workdir and binds are the children's too; `seccomp` must outlive the plan:
// TemplateToStrictFilter() (fork_seccomp.h), which with the template's own filter below it
// amounts to strict. Its mounts are BuildForkChildMounts' (the /proc paths are checked against
// the caller's /proc, so it runs in the template); a template that cannot prepare rootfs trees
// swaps in BuildForkMountPlan's.
ChildPlan BuildForkChildPlan(const SandboxSpec& spec, const BpfProgram* seccomp, int cap_last_cap);

// The plan of a child that joins a namespace shell: `plan` without mounts (JoinNamespaceShell
// makes /proc and its masks) and without the pivot (the shell did it).
ChildPlan ForkShellChildPlan(const ChildPlan& plan);

// /proc paths that exist for the caller (the template: same kernel as its children).
bool ProcPathExists(const char* path);

// Clone flags of the template's spawn: the namespaces each child gets of its own (the network
// namespace comes from the pool, the cgroup namespace is unshared after the move; with a
// namespace shell, the mount, ipc and uts namespaces are joined after the clone).
unsigned long ForkCloneFlags(bool with_shell = false);

// Runs in the child, right after clone. `plan` is the child's own copy (the hostname is set to
// the instance id here). The fds in `fds` stay open; the caller owns them (and closes the rootfs
// ones, attached by then, before any function code runs). Returns true with the child fully
// sandboxed, or false with *report naming the step that failed (a failed attach of the prepared
// rootfs: kMount with step kAttachLayerStep or kAttachRootStep).
bool EnterForkedSandbox(ChildPlan& plan, const std::string& hostname, const SpawnFds& fds,
                        ChildReport* report) noexcept;

}  // namespace ember::sandbox
