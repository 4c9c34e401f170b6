// `ember daemon`: the engine behind the HTTP API, on one io thread, until SIGTERM or SIGINT.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/error.h"
#include "engine/engine.h"

namespace ember::daemon {

struct DaemonOptions {
  std::string socket;                 // unix socket of the API
  std::optional<std::string> listen;  // loopback TCP, "127.0.0.1:PORT"
  engine::EngineOptions engine;
  // On SIGTERM: how long invocations in flight may take to finish before everything is stopped.
  std::chrono::milliseconds shutdown_grace{30000};
};

// Serves until a stop signal, then shuts down gracefully. Returns once everything the daemon
// started is gone; an error if it could not start.
Status RunDaemon(const DaemonOptions& options);

// Copies ember-agent and its Python plugin from `from_dir` into `<run_dir>/agent` (atomically),
// so that running instances never see a rebuilt binary change under them. Returns the dir.
Result<std::string> InstallAgent(const std::string& from_dir, const std::string& run_dir);

}  // namespace ember::daemon
