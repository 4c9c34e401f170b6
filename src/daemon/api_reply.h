// What a client reads out of the daemon's answers (docs/api.md): the error object of a failed
// request, and the metadata headers of an invocation. Used by the CLI; kept here, beside the
// server, so that the two sides of each format are tested together.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "daemon/http_message.h"

namespace ember::daemon {

// {"error": {"code", "message", "type"?, "traceback"?, "output"?}} of a non-2xx answer.
struct ApiError {
  int status = 0;
  std::string code;       // "function_not_found", "handler_error", ...
  std::string message;    // never empty: falls back to the status line or the raw body
  std::string type;       // exception type, for errors raised by function code
  std::string traceback;  // the Python traceback, for the same
  std::string output;     // what the instance printed before it failed (init_failed)
};

// The error an answer carries, or nullopt for a 2xx answer. A body that is not the API's error
// JSON (a proxy's HTML page) still gives an ApiError, with the body as the message.
std::optional<ApiError> ParseApiError(const HttpResponse& response);

// The ApiError as an ember Error, whose code gives the CLI its exit status:
//   invalid_* / bad_request -> kInvalidArgument, *_not_found -> kNotFound,
//   payload_too_large / queue_full -> kResourceExhausted, timeout / queue_timeout -> kTimeout,
//   shutting_down / boot_mode_unavailable -> kUnavailable, deploy_in_progress -> kBusy,
//   function failures (handler_error, init_failed, instance_crashed, out_of_memory, ...) ->
//   kInternal (exit 1). Unknown codes are mapped by status.
// The message is "CODE: MESSAGE" prefixed by `context`, with the type when there is one:
//   "invoke hello: handler_error: ZeroDivisionError: division by zero".
Error ToError(const ApiError& error, std::string_view context);

// Server-Timing: "sandbox;dur=1.234, init;dur=0, handler;dur=0.5, total;dur=2" -> pairs of
// (name, milliseconds) in order. Entries without a dur are skipped.
std::vector<std::pair<std::string, double>> ParseServerTiming(std::string_view header);

// The X-Ember-* headers of an invocation's answer (successful or not).
struct InvokeMetadata {
  std::string request_id;
  std::string instance;         // "" when no instance was involved (a queue_full, a 404)
  std::string boot_mode;        // plain, cold, warm, fork
  bool function_error = false;  // X-Ember-Function-Error: the handler raised
  std::vector<std::pair<std::string, double>> timings_ms;
};
InvokeMetadata ParseInvokeMetadata(const HttpResponse& response);

}  // namespace ember::daemon
