// The CLI is a set of subcommands, one file each. A command registers itself on the root app
// and reports its exit status through `*exit_code`; errors become one line on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "base/error.h"

namespace ember::cli {

struct GlobalOptions {
  std::string data_dir;   // --data-dir / EMBER_DATA_DIR, default /var/lib/ember
  std::string run_dir;    // --run-dir / EMBER_RUN_DIR, default /run/ember (mounts, locks)
  std::string log_level;  // --log-level / EMBER_LOG, default warn
  // The command `ember run` sandboxes, split off the arguments before parsing so that its own
  // options never reach ember's parser (SplitRunCommand).
  std::vector<std::string> run_command;
  // The daemon's API: a unix socket path or http://127.0.0.1:PORT (--socket / EMBER_SOCKET,
  // default <run-dir>/ember.sock). `ember daemon` listens there; client commands connect to it.
  std::string socket;
};

// Removes `ember run`'s command (everything after `--`, or from the first non-option after
// `run`) from `args` and returns it; returns {} when the arguments are not a run.
std::vector<std::string> SplitRunCommand(const CLI::App& app, std::vector<std::string>* args);

// How long idle image mounts stay for the next sandbox (EMBER_IMAGE_LINGER, default 30s; 0
// unmounts as soon as the last sandbox of an image ends). See image/mount.h.
std::chrono::seconds ImageLinger();

// Exit codes of ember's own commands (not `ember run`, which follows docker: 125/126/127).
// Each kind of failure has its own code so scripts can tell them apart.
int ExitCodeFor(const Error& error);

// Prints "ember: <message>" to stderr and returns ExitCodeFor(error).
int ReportError(const Error& error);

void RegisterRunCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
// deploy, invoke, ls, ps, logs, rm: clients of the daemon's API (client.cc).
void RegisterClientCommands(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterImageCommands(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterDoctorCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterCleanupCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterDaemonCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterSnapshotCommands(CLI::App& app, GlobalOptions& global, int* exit_code);

// The parent cgroup of the pool: EMBER_CGROUP_NAME, default "ember".
std::string CgroupName();
// The directory of the running ember binary (ember-agent and ember-python.so are built beside it).
std::string ExecutableDir();

}  // namespace ember::cli
