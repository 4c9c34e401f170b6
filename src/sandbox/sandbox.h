// A running sandbox, seen from the host: its init process (pid 1 of its namespaces, held by a
// pidfd), its cgroup lease and its writable layer. Start() clones the child into fresh user,
// pid, mount, ipc and uts namespaces (the child then unshares net and cgroup ones), maps its
// ids, puts it in its cgroup before it runs any code of its own, and returns once the command
// has been exec'ed (or with the step that failed). Destroying a Sandbox kills its whole process
// tree, which takes its namespaces and mounts with it, and returns its cgroup to the pool.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "base/child_process.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "sandbox/cgroup/pool.h"
#include "sandbox/child.h"
#include "sandbox/seccomp.h"
#include "sandbox/spec.h"

namespace ember::sandbox {

// Where the time of a start went, for `-v` and benchmarks.
struct StartTimings {
  std::chrono::microseconds plan{0};
  std::chrono::microseconds clone{0};
  std::chrono::microseconds id_map_and_cgroup{0};
  std::chrono::microseconds child_setup{0};  // mounts, pivot_root … up to the exec
  std::chrono::microseconds total{0};
};

struct LayerUsage {
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
  bool full = false;  // no room left for one more block or inode
};

struct StartOptions {
  std::string staging_dir;  // existing empty directory, shared by all sandboxes of a run dir
  const BpfProgram* seccomp = nullptr;  // must outlive Start()
  int stdio[3] = {0, 1, 2};             // the caller's fds that become the sandbox's stdin/out/err
  int control_fd = -1;                  // if set, becomes the sandbox's fd 3 (the agent's socket)
  // spec.restorer only: the plan, the image and the report channel, the sandbox's fds 4, 5, 6
  // (the contract of ember-restore, snapshot/restore_plan.h).
  int restore_fds[3] = {-1, -1, -1};
  // Apply spec.limits to the cgroup after the clone, while the child sets up its network
  // namespace, and before it runs anything but ember's own setup. Callers that applied them when
  // claiming the cgroup leave this false.
  bool apply_limits = false;
};

class Sandbox;

// The first half of a start, for a caller with host work of its own (such as claiming the
// cgroup) to do while the child sets up its network namespace (≈0.6 ms): Sandbox::Launch clones
// the child, which then waits; Release attaches it to its cgroup, maps its ids and lets it run
// to the exec. Dropping a LaunchedSandbox unreleased kills and reaps the child.
class LaunchedSandbox {
 public:
  LaunchedSandbox(LaunchedSandbox&&) noexcept = default;
  LaunchedSandbox& operator=(LaunchedSandbox&&) noexcept = default;

  pid_t pid() const { return init_.pid(); }
  // `cgroup` takes the child before it runs anything but ember's own setup.
  Result<Sandbox> Release(cgroup::Lease cgroup) &&;

 private:
  friend class Sandbox;
  LaunchedSandbox() = default;

  SandboxSpec spec_;
  ChildPlan plan_;  // the parent's copy, for naming a failed step
  bool apply_limits_ = false;
  bool in_cgroup_ = false;  // cloned into its (v2) cgroup
  UniqueFd sock_;
  ChildProcess init_;
  StartTimings timings_;
  std::chrono::steady_clock::time_point start_;
};

class Sandbox {
 public:
  // Launch, then Release at once.
  static Result<Sandbox> Start(const SandboxSpec& spec, cgroup::Lease cgroup,
                               const StartOptions& options);
  // `clone_into_cgroup`: a v2 cgroup directory fd the kernel puts the child in as it creates it
  // (CLONE_INTO_CGROUP), or -1 to leave the attach to Release.
  static Result<LaunchedSandbox> Launch(const SandboxSpec& spec, const StartOptions& options,
                                        int clone_into_cgroup = -1);

  // A sandbox whose pid 1 ember did not clone itself: a fork-boot child, cloned by its
  // template (fork_child.h). ember holds no pidfd of it: Signal(SIGKILL) kills through the
  // cgroup, Wait() is unavailable (the template reaps it and reports the exit), and Destroy()
  // empties and returns the cgroup.
  static Sandbox Adopted(std::string id, pid_t host_pid, cgroup::Lease cgroup);

  Sandbox(Sandbox&&) noexcept = default;
  Sandbox& operator=(Sandbox&&) noexcept = default;
  ~Sandbox();

  const std::string& id() const { return id_; }
  // A sandbox built ahead of its use (a restore shell) takes the id of what it becomes.
  void Rename(std::string id) { id_ = std::move(id); }
  pid_t pid() const { return adopted_pid_ > 0 ? adopted_pid_ : init_.pid(); }
  bool adopted() const { return adopted_pid_ > 0; }
  int pidfd() const { return init_.pidfd(); }
  const StartTimings& timings() const { return timings_; }
  cgroup::Lease& cgroup() { return cgroup_; }

  Status Signal(int sig) const;
  Result<ExitStatus> Wait();
  // Usage of the private writable layer (valid even after the sandbox exited).
  Result<LayerUsage> WritableLayer() const;

  // Kills what is left, reaps, and returns the cgroup to the pool.
  Status Destroy();

 private:
  friend class LaunchedSandbox;
  Sandbox(std::string id, ChildProcess init, cgroup::Lease cgroup, UniqueFd layer)
      : id_(std::move(id)),
        init_(std::move(init)),
        cgroup_(std::move(cgroup)),
        layer_(std::move(layer)) {}

  std::string id_;
  ChildProcess init_;
  cgroup::Lease cgroup_;
  UniqueFd layer_;
  StartTimings timings_;
  pid_t adopted_pid_ = -1;
};

// Writes uid_map and gid_map of a child in a new user namespace: its ids 0..count-1 become
// host_base.. on the host. The child has not run any code of its own yet.
Status WriteIdMaps(pid_t pid, const IdRange& ids);

// A fresh sandbox id: "sb-" + 12 hex digits.
std::string NewSandboxId();

}  // namespace ember::sandbox
