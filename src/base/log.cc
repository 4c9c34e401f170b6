#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ember::log {

Status Init(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return Fail(ErrorCode::kInvalidArgument, "invalid log level '" + std::string(level) +
                                                 "': use trace, debug, info, warn, error or off");
  }
  spdlog::drop("ember");
  auto logger = spdlog::stderr_color_st("ember");
  logger->set_pattern("%^ember %l%$: %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return Ok();
}

}  // namespace ember::log
