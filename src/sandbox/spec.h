// What a sandbox is, as plain data: built by a caller (ember run, the engine, a template that
// forks), validated once, then turned into plans (mounts, seccomp, cgroup limits) that the
// launcher applies. Nothing here touches the host.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace ember::sandbox {

// The sandbox's ids 0..count-1 appear on the host as host_base..host_base+count-1: root inside
// is an unprivileged user outside. Images are stored with their own ids and shown to the sandbox
// through an idmapped mount with this same range, so files belong to the sandbox's own root.
struct IdRange {
  uint32_t host_base = 100000;
  uint32_t count = 65536;
  bool operator==(const IdRange&) const = default;
};

enum class NetworkMode {
  kNone,      // a network namespace whose loopback stays down: no usable interface at all
  kLoopback,  // a network namespace with lo up (the default)
};

// Limits applied through the sandbox's cgroup. Unset fields are not limited.
struct CgroupLimits {
  std::optional<uint64_t> memory_bytes;
  std::optional<double> cpus;  // 0.5 = half a CPU (CFS quota over a 100ms period)
  std::optional<uint64_t> pids;
};

struct Rlimit {
  int resource;
  rlim_t soft;
  rlim_t hard;
};

// A host directory shown inside the sandbox (ember's agent, a function's code). Always read-only,
// nosuid and nodev; the target is created in the writable layer if the image lacks it.
struct BindMount {
  std::string source;  // absolute host path
  std::string target;  // absolute path inside the sandbox
};

struct SandboxSpec {
  std::string id;        // unique per host, names the sandbox in logs and paths ("sb-…")
  std::string hostname;  // defaults to the id

  // Rootfs: overlay of the image (lowerdirs, top first) under a private tmpfs upper layer.
  std::vector<std::string> lower_dirs;
  uint64_t tmpfs_size = 64ULL << 20;
  // /tmp inside is a separate tmpfs of this size (counts against memory, not the layer).
  uint64_t tmp_size = 64ULL << 20;

  IdRange ids;
  uint32_t uid = 0;  // user the command runs as, inside the sandbox
  uint32_t gid = 0;
  NetworkMode network = NetworkMode::kLoopback;
  CgroupLimits limits;
  std::vector<Rlimit> rlimits;

  std::vector<BindMount> binds;

  // A fork-boot template (see fork_child.h): it keeps TemplateCapabilities() in its own user
  // namespace and has an empty kForkStagingDir in its root, where each child builds its rootfs.
  bool fork_template = false;
  // pid 1 is ember-restore (a restore, snapshot/restore_plan.h): it keeps
  // RestorerCapabilities() through its exec and switches to uid/gid itself, then drops every
  // capability and installs the seccomp filter as its last steps; argv[0] is its path.
  bool restorer = false;

  std::vector<std::string> argv;
  std::vector<std::string> env;  // "K=V"
  std::string workdir = "/";
};

// Checks a spec for values the kernel would reject late or confusingly; names the field.
Status Validate(const SandboxSpec& spec);

// The defaults a sandbox gets when the caller does not say otherwise.
std::vector<std::string> DefaultEnv();
std::vector<Rlimit> DefaultRlimits();

}  // namespace ember::sandbox
