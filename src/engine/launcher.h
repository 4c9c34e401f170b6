// Boots instances: turns a function (manifest + code on the host) into a running sandbox whose
// pid 1 is ember-agent, with the runtime initialized and the handler loaded. Everything a boot
// needs from the host is opened once per daemon and shared by all boots: the image store and
// one image mount per image (the daemon holds it, so an image's page cache survives between
// instances), the cgroup pool, the compiled seccomp filter, the staging dir.
//
// Boot() blocks (clone, mounts, the runtime's init) and is called on the engine's boot threads,
// never on the io thread; it is safe to call from several threads at once. A boot thread must
// outlive the instances it started: the sandbox's parent-death signal follows the thread.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/protocol.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "engine/boot_gate.h"
#include "engine/boot_mode.h"
#include "engine/manifest.h"
#include "engine/snapshot_source.h"
#include "image/mount.h"
#include "image/store.h"
#include "sandbox/cgroup/pool.h"
#include "sandbox/pool_target.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "snapshot/process_state.h"
#include "snapshot/restore_plan_format.h"

namespace ember::engine {

// Where things are inside every instance.
inline constexpr const char* kAgentMountPoint = "/.ember";
inline constexpr const char* kCodeMountPoint = "/function";

struct LauncherOptions {
  std::string data_dir;
  std::string run_dir;
  std::string agent_dir;  // host dir with ember-agent and ember-python.so
  std::string cgroup_name = "ember";
  sandbox::IdRange ids;
  std::chrono::milliseconds init_timeout{60000};  // runtime init + handler import + warmup
  uint64_t tmpfs_size = 64ULL << 20;              // each instance's writable layer
};

struct BootRequest {
  std::string instance_id;  // "i-…", also the sandbox id and hostname
  Manifest manifest;
  std::string code_dir;  // host path of the function's code
  BootMode mode = BootMode::kPlain;
  // Boot a fork-boot template instead of an instance: it keeps the capabilities a template
  // needs (sandbox/fork_child.h), gets the template seccomp policy, and after init reports
  // whether it can fork (BootedInstance::ready).
  bool fork_template = false;
};

struct BootTimings {
  // plain: host preparation + sandbox start up to the agent exec. fork: cgroup and network
  // namespace from the pools, and the template's clone, up to its reply. cold/warm: the
  // sandbox and ember-restore, up to its success report.
  std::chrono::microseconds sandbox{0};
  // plain: runtime init + import (+ warmup), as seen by the host. fork: the child's own setup
  // (mounts, privileges, after-fork hooks) up to its ready frame. cold/warm: the restored
  // agent's after-fork hooks, up to its ready frame.
  std::chrono::microseconds init{0};
};

struct BootedInstance {
  sandbox::Sandbox sandbox;
  UniqueFd control;       // the agent's socket (framed protocol), blocking
  UniqueFd log;           // read end of the instance's stdout+stderr (none when forked)
  std::string early_log;  // what the instance printed during init
  BootTimings timings;
  std::string ready;  // the agent's kReady payload (a template's says whether it can fork)
  // A fork boot's place in the engine's boot gate, held until the child reports ready.
  BootSlot boot_slot;
  // Fork and restore boots: the agent's kReady is still to come, on `control` (Instance).
  bool awaiting_ready = false;
};

// What a fork boot takes from the pools before it asks the template (sandbox/fork_child.h).
struct ForkResources {
  cgroup::Lease cgroup;                // claimed, with the function's limits applied
  std::vector<UniqueFd> cgroup_procs;  // its cgroup.procs files, for the child to join
  UniqueFd control, control_child;     // the child's control socket (ours, the child's end)
  // The child's stdout and stderr are its template's shared log socket (engine/template.h).
};

// A restore sandbox built ahead of its instance (snapshot/shell_handoff.h): cgroup with the
// function's limits, namespaces, overlay and pivot_root done, ember-restore exec'ed and parked on
// `go`. Restore hands it the snapshot and the instance's id; it is most of a restore's time
// taken off the hot path, as RunD pre-creates cgroups and Catalyzer its sandboxes.
struct RestoreShell {
  BootedInstance booted;  // the sandbox (named by the shell's id until handed over), its sockets
  UniqueFd go;
};

struct BootError {
  Error error;
  // Set when the runtime reported the failure (import error, syntax error, missing handler):
  // its type, message and traceback.
  std::optional<agent::ErrorInfo> init;
  std::string early_log;
};

class Launcher {
 public:
  static Result<std::unique_ptr<Launcher>> Create(LauncherOptions options);
  ~Launcher();

  tl::expected<BootedInstance, BootError> Boot(const BootRequest& request);
  // Blocking part of a fork boot, on a boot thread: a cgroup with the function's limits and the
  // child's sockets. `shared_memory_cgroup` is the template's memory cgroup directory: on v1 the
  // child gets cpu and pids cgroups of its own and is charged to that one (docs/cgroups.md,
  // "Fork boot"); "" or v2 gives it a whole slot of its own.
  Result<ForkResources> PrepareFork(const Manifest& manifest,
                                    const std::string& shared_memory_cgroup);

  // Cold and warm boot (launcher_restore.cc). CheckpointInstance boots a plain instance for
  // `request`, checkpoints it at its entry point and stops it (the caller writes the image:
  // snapshot::WriteImage). OpenSnapshot opens an image for restores of `manifest`'s function;
  // Restore boots `request` (mode kCold or kWarm) from it into a fresh sandbox.
  Result<snapshot::ProcessState> CheckpointInstance(const BootRequest& request);
  Result<std::shared_ptr<SnapshotSource>> OpenSnapshot(const Manifest& manifest,
                                                       const std::string& path);
  // With `shell`, the instance is restored into it (a dead shell is replaced by a new sandbox).
  tl::expected<BootedInstance, BootError> Restore(const BootRequest& request,
                                                  const SnapshotSource& source,
                                                  std::optional<RestoreShell> shell = std::nullopt);
  // A restore shell for `request`'s function (its instance_id names the shell until handoff).
  Result<RestoreShell> BuildRestoreShell(const BootRequest& request);
  // Restore in two halves, for a caller that waits for ember-restore's report itself (the
  // engine's io thread): RestoreInShell hands `shell` its instance (one sendmsg) and returns it
  // with the report channel; FinishRestore checks the report read from it and gives the agent
  // its identity (one small write). Restore() is both with a blocking wait between.
  struct ShellRestore {
    BootedInstance booted;
    UniqueFd report;  // read a snapshot::RestoreReport from it
    std::chrono::steady_clock::time_point start;
    UniqueFd go;  // the handoff socket, kept to tell a shell that never read its handoff
    // After the report channel closed without a report: whether the shell died with the handoff
    // still unread (killed in the instant of the handoff: its memory already gone, so no longer
    // "parked" to an observer, its files not yet closed, so the sendmsg succeeded). The kernel
    // marks our end ECONNRESET when the peer closes with data queued. Such an instance is restored
    // into a new sandbox; a restorer that read it and then failed is the instance's failure.
    bool DroppedUnread() const;
  };
  Result<ShellRestore> RestoreInShell(const BootRequest& request, const SnapshotSource& source,
                                      RestoreShell shell);
  tl::expected<BootedInstance, BootError> FinishRestore(
      const BootRequest& request, const SnapshotSource& source, BootedInstance booted,
      const snapshot::RestoreReport& report, std::chrono::steady_clock::time_point start);

  // Drops the daemon's hold on every image (at shutdown), and returns unused cgroup slots.
  void Shutdown();
  const LauncherOptions& options() const { return options_; }
  // Tops the cgroup pool up to its adaptive target (off the hot path); how many it created.
  Result<size_t> FreeCgroups();
  Result<size_t> CountFreeCgroups();

 private:
  explicit Launcher(LauncherOptions options) : options_(std::move(options)) {}
  Result<std::string> ImageLowerDir(const std::string& image_name);
  // A pool of pre-created cgroups and its adaptive free target.
  struct CgroupPool {
    cgroup::Pool pool;
    sandbox::PoolTarget target;
  };
  static Result<CgroupPool> OpenCgroupPool(const cgroup::Hierarchy& hierarchy,
                                           cgroup::PoolOptions options);
  Result<cgroup::Lease> ClaimCgroup(const Manifest& manifest, CgroupPool& from);
  Result<sandbox::SandboxSpec> BuildSpec(const BootRequest& request, const std::string& lower_dir);
  // What every boot in a new sandbox (plain, cold, warm) takes first: the image mounted, a
  // cgroup with the function's limits, the spec.
  struct Prepared {
    sandbox::SandboxSpec spec;
    cgroup::Lease cgroup;
  };
  Result<Prepared> Prepare(const BootRequest& request);
  // Prepare, with ember-restore as the command; `parked` for a restore shell.
  Result<Prepared> PrepareRestore(const BootRequest& request, bool parked);

  snapshot::RestoreSettings RestoreSettingsFor(const Manifest& manifest) const;
  // "VERSION+AGENT.PLUGIN" (short build-ids of the agent dir's ember-agent and ember-python.so):
  // a snapshot records it as its compat ember_version and restores only where it matches.
  Result<std::string> AgentBuild() const;
  agent::InitRequest MakeInit(const BootRequest& request, const sandbox::SandboxSpec& spec) const;
  // The sandbox with the agent's socket (fd 3) and log pipe (fds 1, 2); for a restore, the
  // restorer's plan, image and report fds (4, 5, 6; -1 = none).
  Result<BootedInstance> StartInstance(const sandbox::SandboxSpec& spec, cgroup::Lease cgroup,
                                       const sandbox::BpfProgram* seccomp,
                                       std::array<int, 3> restore_fds);
  // Waits for the agent's kReady (or its failure, its exit, the deadline).
  tl::expected<void, BootError> AwaitReady(BootedInstance& booted, const BootRequest& request,
                                           std::chrono::steady_clock::time_point deadline);

  LauncherOptions options_;
  sandbox::BpfProgram seccomp_;
  sandbox::BpfProgram template_seccomp_;
  int cap_last_cap_ = 40;
  std::mutex mutex_;  // guards everything below
  std::optional<image::Store> store_;
  // Slots with memory, cpu and pids cgroups: plain instances and templates. How many free ones
  // FreeCgroups keeps grows when a claim finds none (a burst) and shrinks back when claims stop.
  std::optional<CgroupPool> cgroups_;
  // Slots without a memory cgroup, for fork-boot children (v1 only).
  std::optional<CgroupPool> fork_cgroups_;
  std::map<std::string, image::MountLease> images_;  // by digest
};

// A fresh instance id: "i-" + 12 hex digits.
std::string NewInstanceId();

}  // namespace ember::engine
