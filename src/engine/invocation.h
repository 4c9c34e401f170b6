// One invocation as the engine sees it: what the API asked for, and the answer it gets.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "agent/protocol.h"
#include "engine/boot_mode.h"

namespace ember::engine {

enum class InvokeOutcome {
  kOk,
  kHandlerError,     // the handler raised or returned an error
  kCrashed,          // the instance died during the invocation
  kOutOfMemory,      // ... because it was OOM-killed
  kTimeout,          // the handler ran past the timeout; its instance was killed
  kStopped,          // the instance was stopped under it (rm, redeploy, shutdown)
  kNotFound,         // no such function
  kQueueFull,        // every instance busy, max_instances reached, queue full
  kQueueTimeout,     // waited in the queue for too long
  kBootUnavailable,  // a forced boot mode cannot be used
  kBootFailed,       // no instance could be booted (sandbox or runtime init failed)
  kShuttingDown,     // the daemon is stopping
};
const char* InvokeOutcomeName(InvokeOutcome outcome);  // "ok", "handler_error", ...

struct InvokeTimings {
  std::chrono::microseconds sandbox{0};  // 0 when an existing instance was reused
  std::chrono::microseconds init{0};     // runtime init + import; 0 when reused
  std::chrono::microseconds queued{0};   // waiting for an instance (includes its boot)
  std::chrono::microseconds handler{0};
  std::chrono::microseconds total{0};
};

struct InvokeReply {
  InvokeOutcome outcome = InvokeOutcome::kOk;
  std::string body;        // the handler's result (JSON) when ok
  agent::ErrorInfo error;  // handler / init errors: type, message, traceback
  std::string message;     // every other failure: the cause, in one line
  std::string request_id;
  std::string instance_id;  // "" if none was involved
  BootMode boot_mode = BootMode::kPlain;
  InvokeTimings timings;
};

using InvokeCallback = std::function<void(InvokeReply)>;

struct InvokeCall {
  std::string function;
  std::string event;  // JSON text, already validated
  std::optional<BootMode> boot;
  InvokeCallback done;
};

}  // namespace ember::engine
