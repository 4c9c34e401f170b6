// The part of sandbox creation that runs in the child between clone and exec. Everything it
// needs is computed by the parent into a ChildPlan first, because this code must not allocate or
// take locks (the parent may be multi-threaded, e.g. the daemon). A failure is reported to the
// parent as {stage, errno, step} over the sync socket, and the child exits.
//
// EnterSandbox is separate from the exec so that a process ember did not exec (a fork-boot
// template's child, a restored process) can be put into a sandbox by the same steps.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/mount_plan.h"
#include "sandbox/seccomp.h"
#include "sandbox/spec.h"

namespace ember::sandbox {

enum class ChildStage : uint32_t {
  kWaitParent = 1,
  kSetIds,
  kUnshareCgroup,
  kMountPrivate,
  kMount,  // `step` is the index of the failed MountPlan step
  kSendLayer,
  kStdio,
  kPivotRoot,
  kHostname,
  kLoopback,
  kRlimit,  // `step` is the index into rlimits
  kWorkdir,
  kCapabilities,
  kSeccomp,
  kExec,
  kJoinCgroup,      // fork boot: the child writing itself into its cgroup
  kJoinNetwork,     // fork boot: setns into the pooled network namespace
  kUnshareNetwork,  // plain boot: the child's own network namespace
};

const char* ChildStageName(ChildStage stage);

// The report a failing child sends before exiting. A successful exec closes the socket instead.
struct ChildReport {
  ChildStage stage;
  int32_t error;  // errno
  uint32_t step;
};

inline constexpr int kInheritedFds = 7;

struct ChildPlan {
  // Create the network namespace in the child, first thing, rather than in clone3: setting one
  // up (loopback, sysctl tables, per-net state) takes ≈0.6 ms, which then runs while the parent
  // writes the id maps and fills in the cgroup instead of before.
  bool unshare_network = false;
  MountPlan mounts;
  // false: the process is already in its own mount namespace with its root as "/" (a fork-boot
  // child that joined a namespace shell, fork_shell.h), so there is nothing to pivot into.
  bool pivot_root = true;
  std::string hostname;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool loopback_up = true;
  std::vector<Rlimit> rlimits;
  std::string workdir;
  const BpfProgram* seccomp = nullptr;
  int cap_last_cap = 40;
  uint64_t keep_caps = 0;  // templates: TemplateCapabilities(), restorers: RestorerCapabilities()
  // What may be in the bounding set when the child drops it (capabilities.h): all, unless the
  // caller read its own (a fork-boot template for its children).
  uint64_t bounding = ~uint64_t{0};
  // fds of the parent that become the sandbox's 0, 1, 2 and, when >= 0, 3 (the control
  // socket) and 4..6 (a restore's plan, image and report channel: snapshot/restore_plan.h).
  int inherited[kInheritedFds] = {0, 1, 2, -1, -1, -1, -1};

  // exec: the paths to try in order (argv[0] resolved against PATH by the parent, since the
  // child cannot allocate) and NULL-terminated argv/envp arrays pointing into the strings below.
  std::vector<std::string> exec_candidates;
  std::vector<std::string> argv_storage;
  std::vector<std::string> envp_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// Builds the plan for a spec. `staging` is an existing empty directory on the host.
// `inherited` are the parent's fds that become the sandbox's 0..6 (ChildPlan::inherited).
ChildPlan BuildChildPlan(const SandboxSpec& spec, const std::string& staging,
                         const BpfProgram* seccomp, int cap_last_cap,
                         const std::array<int, kInheritedFds>& inherited);

// Unshares the network namespace if the plan says so, waits for the parent's go byte, then
// performs every isolation step up to (not including) the exec. Returns true on success; on
// failure fills *report.
bool EnterSandbox(const ChildPlan& plan, int sync_fd, ChildReport* report) noexcept;

// Makes `root` (a mount point in the caller's own mount namespace) its "/" and cwd, and detaches
// the old root. Allocation-free; false with errno set on failure. The lazy unmount waits for an
// RCU grace period.
bool PivotIntoAndDetach(const char* root) noexcept;

// The steps after the namespaces and the cgroup are in place, shared by plain and fork boot:
// mounts, pivot_root, hostname, loopback, rlimits, capabilities and ids, workdir, inherited
// fds, parent-death signal, seccomp. `layer_sink` (>= 0) gets an fd of the writable layer.
bool FinishSandbox(const ChildPlan& plan, int layer_sink, ChildReport* report) noexcept;

// Sets `lo` up in the caller's network namespace. Allocation-free; returns 0 or the errno.
int BringUpLoopback() noexcept;

// Fills *report and returns false: the one way the steps above report a failure.
bool ChildFailed(ChildReport* report, ChildStage stage, int err, uint32_t step = 0) noexcept;

// EnterSandbox, then exec. Never returns: on failure reports and _exits(125).
[[noreturn]] void RunSandboxChild(const ChildPlan& plan, int sync_fd) noexcept;

}  // namespace ember::sandbox
