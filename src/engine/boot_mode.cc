#include "engine/boot_mode.h"

namespace ember::engine {

const char* BootModeName(BootMode mode) {
  switch (mode) {
    case BootMode::kPlain:
      return "plain";
    case BootMode::kCold:
      return "cold";
    case BootMode::kWarm:
      return "warm";
    case BootMode::kFork:
      return "fork";
  }
  return "unknown";
}

Result<BootMode> ParseBootMode(std::string_view text) {
  for (BootMode mode : {BootMode::kPlain, BootMode::kCold, BootMode::kWarm, BootMode::kFork}) {
    if (text == BootModeName(mode)) return mode;
  }
  return Fail(ErrorCode::kInvalidArgument,
              "unknown boot mode '" + std::string(text) + "' (use plain, cold, warm or fork)");
}

namespace {

bool Available(const BootSources& sources, BootMode mode) {
  switch (mode) {
    case BootMode::kPlain:
      return true;
    case BootMode::kCold:
      return sources.snapshot_on_disk;
    case BootMode::kWarm:
      return sources.snapshot_resident;
    case BootMode::kFork:
      return sources.template_alive;
  }
  return false;
}

std::string WhyUnavailable(const BootSources& sources, BootMode mode) {
  const std::string& reason =
      mode == BootMode::kFork ? sources.template_reason : sources.snapshot_reason;
  if (!reason.empty()) return reason;
  return mode == BootMode::kFork   ? "the function has no live template"
         : mode == BootMode::kWarm ? "the function has no snapshot resident in memory"
                                   : "the function has no snapshot";
}

}  // namespace

Result<BootMode> PlanBoot(const BootSources& sources, std::optional<BootMode> forced) {
  if (forced) {
    if (Available(sources, *forced)) return *forced;
    return Fail(ErrorCode::kUnavailable,
                std::string("boot mode ") + BootModeName(*forced) +
                    " is not available: " + WhyUnavailable(sources, *forced));
  }
  for (BootMode mode : {BootMode::kFork, BootMode::kWarm, BootMode::kCold}) {
    if (Available(sources, mode)) return mode;
  }
  return BootMode::kPlain;
}

}  // namespace ember::engine
