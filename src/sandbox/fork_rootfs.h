// Fork boot: a child's rootfs, built ahead by its template with the new mount API.
//
// A child used to build its whole rootfs after the clone (a tmpfs, an overlay of the template's
// root, /dev, devpts, /dev/shm, the binds: ~40 syscalls, half a millisecond on its boot's
// critical path). Everything in it but /proc is the same for every child, so the template
// builds it while it waits for the next spawn request, as two *detached* mount trees (fsmount,
// open_tree(OPEN_TREE_CLONE)) held as fds:
//   layer   size-capped tmpfs: upper/, work/ (the overlay's), masked/ (the empty dir that masks
//           parts of /proc), shm/ (/dev/shm), root/ (where the overlay goes)
//   root    overlay: lower = the template's root "/" (its files, /tmp included, as they were at
//           freeze, over the image), upper and work in `layer`; on it, already attached:
//             dev        recursive clone of the template's /dev (read-only, the same devices)
//             dev/pts    a fresh devpts instance
//             dev/shm    a bind of layer/shm, nosuid, nodev, noexec
//             <binds>    the template's read-only binds (agent, code), cloned again read-only
// The child inherits the fds with the clone and, in its own mount namespace, attaches `layer` at
// kForkStagingDir and `root` at kForkStagingDir/root (move_mount of a detached tree into the
// caller's namespace: Linux >= 6.15 lets overlayfs take its upper layer from a detached mount),
// then mounts its own /proc (BuildForkChildMounts: procfs belongs to the pid namespace the
// child only has after the clone) and pivots. Each prepared tree serves one child: the template
// closes its fds after the clone and builds the next.
//
// The resulting tree is the one the child used to build with paths (the same filesystems,
// options, flags and order of layering); only who creates it, and when, differs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "sandbox/mount_plan.h"
#include "sandbox/spec.h"

namespace ember::sandbox {

// What the template builds for each child (pure: computed once from the template's spec).
struct ForkRootfsPlan {
  std::string layer_options;  // tmpfs: "mode=0755,size=N"
  struct Dir {
    std::string path;  // relative to the mount it is created in
    mode_t mode;
  };
  std::vector<Dir> layer_dirs;  // upper, work, masked, shm, root
  std::string lower;            // the overlay's lower layer: the template's "/"
  std::string devpts_options;   // comma-separated, "newinstance" among them
  std::vector<Dir> dev_dirs;    // mount points in the template's /dev, once it is attached
  // Read-only binds of what the template has mounted at each target, with the directories to
  // create in the overlay first (parents before children; EEXIST is fine).
  std::vector<std::string> bind_targets;
  std::vector<Dir> root_dirs;
};

ForkRootfsPlan BuildForkRootfsPlan(const SandboxSpec& spec);

// The mounts a child makes itself once the prepared trees are attached: a fresh /proc of its pid
// namespace, masked as in plain boot. `staging` = kForkStagingDir, `root` = staging + "/root".
// `exists(path)` says whether a /proc path exists for the template (same kernel, so for the
// child too): masks of paths this kernel does not have are left out of the plan instead of
// failing with ENOENT in every child.
MountPlan BuildForkChildMounts(bool (*exists)(const char* path));

// The template's fds of one child's prepared trees (close-on-exec; closed in the child once
// attached, in the template once the child has them).
struct PreparedRootfs {
  UniqueFd layer;
  UniqueFd root;
  bool ready() const { return layer.valid() && root.valid(); }
};

// Builds the trees of `plan` in the caller's (the template's) mount namespace, detached.
Result<PreparedRootfs> PrepareForkRootfs(const ForkRootfsPlan& plan);

// In the child, in its new mount namespace: attaches `layer` at `mounts.staging` and `root` at
// `mounts.root`. Allocation-free; returns 0 or the errno, with *failed naming the tree.
inline constexpr uint32_t kAttachLayerStep = 0xfff0;  // ChildReport::step of a failed attach
inline constexpr uint32_t kAttachRootStep = 0xfff1;
int AttachForkRootfs(int layer, int root, const MountPlan& mounts, uint32_t* failed) noexcept;

}  // namespace ember::sandbox
