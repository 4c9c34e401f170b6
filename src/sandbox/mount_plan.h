// The rootfs of a sandbox as a list of mount steps, computed up front (pure, unit-tested) and
// applied in the child by ApplyMountPlan, which allocates nothing.
//
// Layout, built inside the child's private mount namespace on a staging directory that every
// sandbox shares (each mounts over it in its own namespace, so nothing shows on the host):
//   <staging>            tmpfs, size-capped: the sandbox's whole private writable layer
//   <staging>/upper      overlay upper dir   (RunD's read/write split: image below, tmpfs above)
//   <staging>/work       overlay work dir
//   <staging>/root       overlay of lower_dirs + upper; becomes "/" after pivot_root
//   root/proc            fresh procfs of the sandbox's pid namespace, with masked paths
//   root/dev             <staging>/dev with bind-mounted null, zero, full, random, urandom,
//                        tty, a private devpts instance and /dev/shm; read-only after population
//   root/tmp             its own size-capped tmpfs
//   root/<bind target>   host directories the spec asks for (agent, function code), read-only
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace ember::sandbox {

enum class MountOp {
  kMount,            // mount(source, target, fstype, flags, data)
  kMkdir,            // mkdir(target, mode); EEXIST is fine
  kTouch,            // create an empty file at target (a bind-mount point); EEXIST is fine
  kSymlink,          // symlink(source, target); EEXIST is fine
  kBindOptional,     // bind source onto target; skipped when either is missing (masks, devices)
  kMaskDir,          // read-only bind of an empty dir (source) over target; skipped when missing
  kBindNoExec,       // bind source onto target, then nosuid, nodev, noexec
  kRemountReadOnly,  // bind-remount target read-only, keeping the locked flags in `flags`
  kBindReadOnly,     // recursive bind of source onto target, then read-only, nosuid, nodev
};

struct MountStep {
  MountOp op;
  std::string source;
  std::string target;
  std::string fstype;
  unsigned long flags = 0;
  std::string data;
  mode_t mode = 0755;
};

struct MountPlan {
  std::string staging;  // where the tmpfs goes; the caller guarantees the directory exists
  std::string root;     // staging + "/root": the new root
  std::vector<MountStep> steps;
};

// Paths under /proc that are hidden (a bind of /dev/null or an empty read-only tmpfs) or made
// read-only, as in the OCI runtime defaults.
const std::vector<std::string>& MaskedProcFiles();
const std::vector<std::string>& MaskedProcDirs();
const std::vector<std::string>& ReadOnlyProcPaths();

MountPlan BuildMountPlan(const SandboxSpec& spec, const std::string& staging);

// Directories of a sandbox's writable tmpfs (beside upper/ and work/): the empty one that masks
// /proc directories, /dev/shm's, and /dev's (plain boot).
inline constexpr const char* kMaskedDir = "/masked";
inline constexpr const char* kShmDir = "/shm";
inline constexpr const char* kDevDir = "/dev";

// Where, inside a fork-boot template's root, each child mounts its own writable layer. Empty in
// the template (its children cover it in their own mount namespaces).
inline constexpr const char* kForkStagingDir = "/.ember-spawn";

// The rootfs of a child forked from a template, built in the child's copy of the template's
// mount namespace (so paths are as the template sees them). Only where the template cannot build
// it ahead as detached trees (fork_rootfs.h, the same layout; Linux < 6.15):
//   <kForkStagingDir>        size-capped tmpfs: the child's writable layer
//   .../root                 overlay: lower = the template's root "/" (its files, /tmp included,
//                            as they were at freeze, over the image), upper = the child's tmpfs
//   root/proc                fresh procfs of the child's pid namespace, masked as in plain boot
//   root/dev                 recursive bind of the template's /dev (read-only, same devices),
//                            with a fresh devpts instance and /dev/shm from the child's tmpfs
//   root/<bind target>       the template's read-only binds (agent, code), bound again
MountPlan BuildForkMountPlan(const SandboxSpec& spec);

// Applies the steps in order. Allocation-free; on failure returns errno and sets *failed_step.
int ApplyMountPlan(const MountPlan& plan, size_t* failed_step) noexcept;

}  // namespace ember::sandbox
