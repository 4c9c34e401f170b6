// `ember daemon`: serve the HTTP API (docs/api.md) on a unix socket and optionally loopback TCP.
#include <unistd.h>

#include <algorithm>

#include "base/units.h"
#include "cli/command.h"
#include "daemon/daemon.h"

namespace ember::cli {
namespace {

struct DaemonFlags {
  std::string listen;
  std::string agent_dir;
  size_t boot_threads = 2;
  size_t boot_concurrency = 0;
  size_t queue_size = 100;
  size_t restore_shells = 16;
  std::string shutdown_grace = "30s";
  std::string init_timeout = "60s";
  std::string tmpfs_size = "64M";
};

Status Run(const GlobalOptions& global, const DaemonFlags& flags) {
  daemon::DaemonOptions options;
  options.socket = global.socket;
  if (!flags.listen.empty()) options.listen = flags.listen;
  engine::EngineOptions& e = options.engine;
  e.launcher.data_dir = global.data_dir;
  e.launcher.run_dir = global.run_dir;
  e.launcher.cgroup_name = CgroupName();
  e.boot_threads = std::max<size_t>(1, flags.boot_threads);
  e.boot_concurrency = flags.boot_concurrency;
  e.queue_limit = flags.queue_size;
  e.restore_shells.max_ready = flags.restore_shells;
  e.restore_shells.min_ready = std::min<size_t>(1, flags.restore_shells);
  EMBER_ASSIGN_OR_RETURN(options.shutdown_grace,
                         ParseDuration(flags.shutdown_grace, "--shutdown-grace"));
  EMBER_ASSIGN_OR_RETURN(e.launcher.init_timeout,
                         ParseDuration(flags.init_timeout, "--init-timeout"));
  EMBER_ASSIGN_OR_RETURN(e.launcher.tmpfs_size, ParseSize(flags.tmpfs_size, "--tmpfs-size"));
  EMBER_ASSIGN_OR_RETURN(
      e.launcher.agent_dir,
      daemon::InstallAgent(flags.agent_dir.empty() ? ExecutableDir() : flags.agent_dir,
                           global.run_dir));
  return daemon::RunDaemon(options);
}

}  // namespace

void RegisterDaemonCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto flags = std::make_shared<DaemonFlags>();
  auto* cmd = app.add_subcommand(
      "daemon",
      "Serve the ember API: deploy functions and invoke them in sandboxes (stops gracefully on "
      "SIGTERM)");
  cmd->add_option("--listen", flags->listen,
                  "also listen on loopback TCP, e.g. 127.0.0.1:8080 (no authentication: loopback "
                  "only)");
  cmd->add_option("--agent-dir", flags->agent_dir,
                  "where ember-agent and ember-python.so are (default: beside this binary)");
  cmd->add_option("--boot-threads", flags->boot_threads,
                  "threads that boot and tear down instances")
      ->capture_default_str();
  cmd->add_option("--boot-concurrency", flags->boot_concurrency,
                  "at most this many boots in progress, the others wait their turn (reported as "
                  "queueing): bounds a boot storm's memory and each boot's time, at the cost of "
                  "boots/s on a busy host (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--queue-size", flags->queue_size,
                  "invocations that may wait per function when all instances are busy (then 429)")
      ->capture_default_str();
  cmd->add_option("--restore-shells", flags->restore_shells,
                  "most restore sandboxes kept built and parked per function with a snapshot "
                  "(at least 1 while it has one; grows with bursts of restores; 0: none)")
      ->capture_default_str();
  cmd->add_option("--shutdown-grace", flags->shutdown_grace,
                  "on SIGTERM, how long invocations in flight may take to finish")
      ->capture_default_str();
  cmd->add_option("--init-timeout", flags->init_timeout,
                  "how long a runtime may take to initialize and import its handler")
      ->capture_default_str();
  cmd->add_option("--tmpfs-size", flags->tmpfs_size, "each instance's private writable layer")
      ->capture_default_str();
  cmd->callback([&global, flags, exit_code] {
    if (auto status = Run(global, *flags); !status) *exit_code = ReportError(status.error());
  });
}

}  // namespace ember::cli
