// `ember cleanup`: removes what ember keeps on the host between runs to make the next start fast
// — idle image mounts (kept for EMBER_IMAGE_LINGER) and the pre-created cgroup pool — leaving
// alone anything a running sandbox uses. For uninstalling, tests and a clean host.
#include <cstdio>

#include "cli/command.h"
#include "image/mount.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/pool.h"

namespace ember::cli {
namespace {

int RunCleanup(const GlobalOptions& global) {
  auto unmounted = image::CleanupStaleMounts(global.run_dir);
  if (!unmounted) return ReportError(unmounted.error());
  std::fprintf(stderr, "unmounted %zu idle image(s)\n", *unmounted);
  auto hierarchy = cgroup::DetectHierarchy();
  if (!hierarchy) return ReportError(hierarchy.error());
  cgroup::PoolOptions options;
  options.name = CgroupName();
  options.lock_dir = global.run_dir + "/cgroups";
  auto pool = cgroup::Pool::Open(*hierarchy, options);
  if (!pool) return ReportError(pool.error());
  if (auto destroyed = pool->Destroy(); !destroyed) return ReportError(destroyed.error());
  std::fprintf(stderr, "removed the cgroup pool '%s'\n", options.name.c_str());
  // The daemon's pool of memory-less slots for fork-boot children (v1 hosts only).
  if (hierarchy->version == cgroup::Version::kV1) {
    options.name = cgroup::ForkPoolName(options.name);
    options.lock_dir = global.run_dir + "/cgroups-fork";
    options.memory = false;
    auto fork_pool = cgroup::Pool::Open(*hierarchy, options);
    if (!fork_pool) return ReportError(fork_pool.error());
    if (auto destroyed = fork_pool->Destroy(); !destroyed) return ReportError(destroyed.error());
    std::fprintf(stderr, "removed the cgroup pool '%s'\n", options.name.c_str());
  }
  return 0;
}

}  // namespace

void RegisterCleanupCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "cleanup",
      "remove idle image mounts and the pre-created cgroup pool (what running sandboxes use "
      "stays)");
  cmd->callback([&global, exit_code] { *exit_code = RunCleanup(global); });
}

}  // namespace ember::cli
