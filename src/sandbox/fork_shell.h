// Fork boot: the mount, ipc and uts namespaces of a template's next child, made ahead
// ("namespace shell").
//
// Cloning a child into new mount, ipc and uts namespaces cost ≈ 25 % of the template's clone
// (a copy of the template's ≈ 30 mounts, a new mqueue superblock), and the child then paid for
// pivot_root and for detaching the template's tree (≈ 180 µs, the lazy umount waiting for an RCU
// grace period). None of it depends on the spawn request, so the template does it while idle: it
// clones a short-lived task (CLONE_VM | CLONE_VFORK | CLONE_FILES: no page-table copy, the
// template sleeps until it is done, the fds it opens land in the template's table) into new
// mount, ipc and uts namespaces. That task opens the three namespaces' fds, attaches the rootfs
// trees the template prepared (fork_rootfs.h), pivots into them, detaches the template's tree
// and exits. The spawn then clones into a new pid namespace only, and the child
// (JoinNamespaceShell) joins the three with setns: its root and cwd become the prepared root,
// with nothing of the template's tree left in that namespace. Each shell serves one child.
//
// procfs belongs to the child's pid namespace, so /proc is still the child's to mount. The kernel
// lets a user namespace mount procfs only where a procfs is already fully visible
// (mount_too_revealing), which the shell's namespace, with the template's tree gone, is not: the
// child creates its procfs (fsopen, fsmount) while it is still in the template's mount namespace,
// detached, and attaches it in its own. The masks then go on as in plain boot, in the same order.
// The masked directories' empty dir cannot be the layer's (the layer is no longer in the child's
// tree) nor a detached clone of it per child (closing the last fd of a detached mount dissolves
// it, which waits for an RCU grace period: ≈ 1–2 ms in the child under load), so it is a clone of
// one read-only, empty tmpfs the template makes once (MakeMaskSource) and holds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "sandbox/fork_rootfs.h"
#include "sandbox/mount_plan.h"

namespace ember::sandbox {

// What a child does in its shell's mount namespace, where "/" is its root (pure: computed once
// in the template; `exists` as for BuildForkChildMounts). `all` is BuildForkChildMounts' plan
// with the root "/" (the steps a failure's index names); the rest split it by how it is applied.
struct ForkProcPlan {
  MountPlan all;
  MountPlan files;                       // binds of /dev/null over masked /proc files
  std::vector<std::string> masked_dirs;  // read-only clones of the empty dir over these
  MountPlan read_only;                   // /proc paths bound read-only on themselves
};

ForkProcPlan BuildForkProcPlan(bool (*exists)(const char* path));

// A shell as the child sees it: the fds it inherited with the clone (-1: no shell).
struct ShellFds {
  int mnt = -1;
  int ipc = -1;
  int uts = -1;
  int masked = -1;  // the template's mask source (MakeMaskSource)
};

// The template's fds of one shell (close-on-exec; closed in the child once it joined them, in
// the template once the child has them).
struct NamespaceShell {
  UniqueFd mnt;
  UniqueFd ipc;
  UniqueFd uts;
  bool ready() const { return mnt.valid() && ipc.valid() && uts.valid(); }
  ShellFds fds(int mask_source) const { return {mnt.get(), ipc.get(), uts.get(), mask_source}; }
};

// In the template, once: a detached, read-only (superblock and mount), empty tmpfs whose clones
// mask /proc directories in every child, as the layer's empty masked/ dir does in plain boot.
Result<UniqueFd> MakeMaskSource();

// Clone flags of the shell task.
unsigned long NamespaceShellCloneFlags();

// In the template: makes a shell from `rootfs` (consumed: attached in the shell's namespace, its
// fds are closed). `attach` names where the trees go before the pivot (staging and root, as
// BuildForkChildMounts' plan). `stack` is the shell task's stack (the template's memory, shared).
Result<NamespaceShell> MakeNamespaceShell(PreparedRootfs rootfs, const MountPlan& attach,
                                          std::span<char> stack);

// ChildReport::step of a failed shell step (stage kMount); other steps are indices into
// ForkProcPlan::all.
inline constexpr uint32_t kCreateProcStep = 0xfff2;
inline constexpr uint32_t kJoinMountNsStep = 0xfff3;
inline constexpr uint32_t kJoinIpcNsStep = 0xfff4;
inline constexpr uint32_t kJoinUtsNsStep = 0xfff5;
inline constexpr uint32_t kCloneMaskStep = 0xfff6;

// In the child, right after its clone into a new pid namespace: creates its procfs, joins the
// shell's mount, ipc and uts namespaces, attaches /proc and masks it. Allocation-free; returns 0
// or the errno, with *failed naming the step. The shell's fds stay open (the caller's).
int JoinNamespaceShell(const ShellFds& shell, const ForkProcPlan& plan, uint32_t* failed) noexcept;

}  // namespace ember::sandbox
