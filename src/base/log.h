// Logging goes through spdlog to stderr. The CLI keeps it at "warn" so that a command's own
// output stays clean; `--log-level debug` (or EMBER_LOG=debug) shows every step.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "base/error.h"

namespace ember::log {

Status Init(std::string_view level);

}  // namespace ember::log
