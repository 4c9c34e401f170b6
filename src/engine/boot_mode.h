// How an instance comes to be (DESIGN.md, "Boot modes"). The planner picks the fastest mode a
// function has available; a caller may force one, and a forced mode that is not available is an
// error naming why, never a silent fallback.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ember::engine {

enum class BootMode {
  kPlain,  // new sandbox, exec the runtime, import the handler
  kCold,   // restore from a snapshot file not yet in memory
  kWarm,   // restore from a snapshot already resident, sharing its pages
  kFork,   // sfork from a live template
};

const char* BootModeName(BootMode mode);
Result<BootMode> ParseBootMode(std::string_view text);  // "plain", "cold", "warm", "fork"

// What a function has that a boot could start from, as seen by the engine at one moment.
struct BootSources {
  bool template_alive = false;     // fork boot possible
  bool snapshot_resident = false;  // warm boot possible
  bool snapshot_on_disk = false;   // cold boot possible
  std::string template_reason;     // why there is no template (for errors), if known
  std::string snapshot_reason;     // why there is no snapshot, if known
};

// The mode to boot with: `forced` if given and available, else the fastest available
// (fork, warm, cold, plain). Fails with kUnavailable when a forced mode cannot be used.
Result<BootMode> PlanBoot(const BootSources& sources, std::optional<BootMode> forced);

}  // namespace ember::engine
