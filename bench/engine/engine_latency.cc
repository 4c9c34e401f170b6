// ember-engine-bench: invoke latency per boot mode through the engine directly — no HTTP, no
// client, no socket — so that bench/engine_latency.py can set it beside the same figures through
// the daemon and show what the API path costs.
//
//   ember-engine-bench --data-dir D --run-dir R --cgroup-name N --agent-dir A
//       --function DIR [--function DIR ...] --modes plain,fork,warm,cold
//       --rounds N --warmups N [--event JSON] [--expect JSON] --json OUT
//
// It starts an Engine on its own io_context, deploys every function, readies what each mode
// boots from (fork: the template built on deploy; warm and cold: a snapshot), then runs rounds
// interleaved by mode (plain fork warm cold plain fork …). Every invocation forces its boot mode,
// so it boots a fresh instance as `?boot=` does through the daemon; it is timed from Invoke to
// its done callback (steady_clock), its answer is checked, and its instance is stopped and waited
// for outside the clock (a cold boot beside a live instance that maps the image would be partly
// warm). Before a warm boot the snapshot is read into the page cache, outside the clock (the
// engine refuses a warm boot under 90 % resident). Needs root (sandboxes, cgroups).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/log.h"
#include "daemon/daemon.h"
#include "engine/boot_mode.h"
#include "engine_session.h"

namespace ember::bench {
namespace {

struct Flags {
  std::string data_dir;
  std::string run_dir;
  std::string cgroup_name = "ember-engine-bench";
  std::string agent_dir;
  std::vector<std::string> functions;
  std::string modes = "plain,fork,warm,cold";
  size_t rounds = 20;
  size_t warmups = 2;
  std::string event = "{}";
  std::string expect;
  std::string json_out;
  std::string log_level = "warn";
};

Result<std::vector<engine::BootMode>> ParseModes(const std::string& text) {
  std::vector<engine::BootMode> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string word = text.substr(start, comma - start);
    if (!word.empty()) {
      EMBER_ASSIGN_OR_RETURN(auto mode, engine::ParseBootMode(word).map_error([&](Error e) {
        return std::move(e).Context("--modes");
      }));
      out.push_back(mode);
    }
    start = comma + 1;
  }
  if (out.empty()) return Fail(ErrorCode::kInvalidArgument, "--modes: no boot mode given");
  return out;
}

Status Run(const Flags& flags) {
  if (::geteuid() != 0) {
    return Fail(ErrorCode::kPermissionDenied,
                "needs root: the engine builds sandboxes (namespaces, "
                "cgroups, mounts)");
  }
  if (flags.functions.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "give at least one --function DIR");
  }
  EMBER_TRY(log::Init(flags.log_level));
  SessionPlan plan;
  EMBER_ASSIGN_OR_RETURN(plan.modes, ParseModes(flags.modes));
  plan.function_dirs = flags.functions;
  plan.rounds = flags.rounds;
  plan.warmups = flags.warmups;
  plan.event = flags.event;
  plan.expect = flags.expect;
  plan.json_out = flags.json_out;
  engine::EngineOptions& options = plan.engine;
  options.launcher.data_dir = flags.data_dir;
  options.launcher.run_dir = flags.run_dir;
  options.launcher.cgroup_name = flags.cgroup_name;
  EMBER_ASSIGN_OR_RETURN(options.launcher.agent_dir,
                         daemon::InstallAgent(flags.agent_dir, flags.run_dir));
  return RunSession(plan);
}

int RunMain(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Invoke latency per boot mode through the ember engine directly (no HTTP)"};
  app.add_option("--data-dir", flags.data_dir, "the engine's data dir (functions, snapshots)")
      ->required();
  app.add_option("--run-dir", flags.run_dir, "the engine's run dir (sandboxes, agent copy)")
      ->required();
  app.add_option("--cgroup-name", flags.cgroup_name, "the cgroup pool's name (removed at exit)")
      ->capture_default_str();
  app.add_option("--agent-dir", flags.agent_dir,
                 "where ember-agent, ember-python.so and ember-restore are")
      ->required();
  app.add_option("--function", flags.functions,
                 "a function bundle dir (its ember.toml names it); repeatable")
      ->required();
  app.add_option("--modes", flags.modes, "boot modes, comma-separated")->capture_default_str();
  app.add_option("--rounds", flags.rounds, "measured rounds")->capture_default_str();
  app.add_option("--warmups", flags.warmups, "unmeasured rounds first")->capture_default_str();
  app.add_option("--event", flags.event, "the event sent (JSON)")->capture_default_str();
  app.add_option("--expect", flags.expect, "the answer expected (JSON; empty: any ok answer)");
  app.add_option("--json", flags.json_out, "where to write every sample (JSON)")->required();
  app.add_option("--log-level", flags.log_level, "the engine's log level")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto status = Run(flags);
  if (!status) {
    std::fprintf(stderr, "ember-engine-bench: %s\n", status.error().ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ember::bench

int main(int argc, char** argv) {
  // The engine returns errors as values; only a library (CLI11, the allocator) can throw.
  try {
    return ember::bench::RunMain(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember-engine-bench: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ember-engine-bench: internal error: unknown exception\n");
  }
  return 2;
}
