// One `ember run`: acquire what the sandbox needs (image mount, pooled cgroup, compiled seccomp
// filter), start it, supervise it (signals, timeout) and turn the outcome into an exit code and,
// when the command did not simply exit, a one-line reason.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "sandbox/sandbox.h"
#include "sandbox/spec.h"

namespace ember::cli {

constexpr int kRunTimedOut = 124;
constexpr int kRunEmberError = 125;
constexpr int kRunNotExecutable = 126;
constexpr int kRunNotFound = 127;

struct RunRequest {
  std::string data_dir;
  std::string run_dir;
  std::string image;
  sandbox::SandboxSpec spec;
  std::optional<std::chrono::milliseconds> timeout;
  // After forwarding INT/TERM/HUP/QUIT, how long the command may take to stop before SIGKILL.
  std::chrono::milliseconds stop_timeout{10000};
  bool verbose = false;
};

// Runs the request to completion and returns ember run's exit code.
int RunInSandbox(const RunRequest& request);

}  // namespace ember::cli
