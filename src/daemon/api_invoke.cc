// POST /v1/functions/{name}/invoke: the event in, the handler's result out.
#include <nlohmann/json.hpp>

#include "daemon/api.h"

namespace ember::daemon {
namespace {

using engine::InvokeOutcome;

std::string Millis(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(us.count()) / 1000.0);
  return buf;
}

int StatusFor(InvokeOutcome outcome) {
  switch (outcome) {
    case InvokeOutcome::kOk:
      return 200;
    case InvokeOutcome::kHandlerError:
      return 500;
    case InvokeOutcome::kCrashed:
    case InvokeOutcome::kOutOfMemory:
    case InvokeOutcome::kBootFailed:
    case InvokeOutcome::kStopped:
      return 502;
    case InvokeOutcome::kTimeout:
      return 504;
    case InvokeOutcome::kNotFound:
      return 404;
    case InvokeOutcome::kQueueFull:
      return 429;
    case InvokeOutcome::kQueueTimeout:
    case InvokeOutcome::kShuttingDown:
      return 503;
    case InvokeOutcome::kBootUnavailable:
      return 409;
  }
  return 500;
}

}  // namespace

HttpResponse InvokeResponse(const engine::InvokeReply& reply) {
  HttpResponse response;
  response.status = StatusFor(reply.outcome);
  if (reply.outcome == InvokeOutcome::kOk) {
    response.body = reply.body;
  } else {
    nlohmann::json error = {{"code", engine::InvokeOutcomeName(reply.outcome)}};
    if (reply.outcome == InvokeOutcome::kHandlerError || !reply.error.type.empty()) {
      error["type"] = reply.error.type;
      error["message"] =
          reply.outcome == InvokeOutcome::kHandlerError ? reply.error.message : reply.message;
      error["traceback"] = reply.error.traceback;
      if (reply.outcome == InvokeOutcome::kHandlerError) {
        response.headers.emplace_back("X-Ember-Function-Error", "handled");
      }
    } else {
      error["message"] = reply.message;
    }
    response.body = nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                          nlohmann::json::error_handler_t::replace);
  }
  response.headers.emplace_back("X-Ember-Request-Id", reply.request_id);
  if (!reply.instance_id.empty()) {
    response.headers.emplace_back("X-Ember-Instance", reply.instance_id);
    response.headers.emplace_back("X-Ember-Boot-Mode", engine::BootModeName(reply.boot_mode));
    response.headers.emplace_back("X-Ember-Instance-Reused",
                                  reply.timings.sandbox.count() == 0 ? "true" : "false");
  }
  const auto& t = reply.timings;
  response.headers.emplace_back(
      "Server-Timing", "sandbox;dur=" + Millis(t.sandbox) + ", init;dur=" + Millis(t.init) +
                           ", queue;dur=" + Millis(t.queued) +
                           ", handler;dur=" + Millis(t.handler) + ", total;dur=" + Millis(t.total));
  return response;
}

void Api::Invoke(const std::string& name, HttpRequest&& request, Responder respond) {
  engine::InvokeCall call;
  call.function = name;
  if (auto mode = request.query.find("boot"); mode != request.query.end()) {
    auto parsed = engine::ParseBootMode(mode->second);
    if (!parsed) {
      respond(JsonError(400, "invalid_boot_mode", parsed.error().message()));
      return;
    }
    call.boot = *parsed;
  }
  if (request.body.size() > kMaxEventBytes) {
    respond(JsonError(413, "payload_too_large",
                      "the event is " + std::to_string(request.body.size()) +
                          " bytes; the limit is " + std::to_string(kMaxEventBytes) + " (6 MiB)"));
    return;
  }
  std::string event = request.body.empty() ? "{}" : std::move(request.body);
  auto parsed = nlohmann::json::parse(event, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    respond(JsonError(400, "invalid_event", "the event is not valid JSON"));
    return;
  }
  call.event = std::move(event);
  call.done = [respond = std::move(respond)](const engine::InvokeReply& reply) {
    respond(InvokeResponse(reply));
  };
  engine_->Invoke(std::move(call));
}

}  // namespace ember::daemon
