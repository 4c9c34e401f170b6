// One run of ember-engine-bench: an Engine on its own io_context, the functions deployed and
// readied for each boot mode, the interleaved rounds, the JSON of every sample, and the
// engine's teardown (instances, templates, its cgroup pool) whatever happened before.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "engine/boot_mode.h"
#include "engine/engine.h"

namespace ember::bench {

struct SessionPlan {
  engine::EngineOptions engine;
  std::vector<std::string> function_dirs;  // bundles; each ember.toml names its function
  std::vector<engine::BootMode> modes;     // interleaved in this order within a round
  size_t rounds = 20;
  size_t warmups = 2;  // unmeasured rounds before the measured ones
  std::string event = "{}";
  std::string expect;  // the answer every invocation must give (JSON); empty: any ok answer
  std::string json_out;
};

// Runs the plan and writes plan.json_out. A mode a function cannot boot in (no template, the
// snapshot failed) is recorded with why, and the others still run; a failed invocation ends its
// (function, mode) pair's samples. Fails only when nothing can be measured or cleaned up.
Status RunSession(const SessionPlan& plan);

}  // namespace ember::bench
