#include "daemon/api_reply.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace ember::daemon {
namespace {

std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

ErrorCode CodeFor(const ApiError& error) {
  const std::string& code = error.code;
  if (code.rfind("invalid_", 0) == 0 || code == "bad_request") return ErrorCode::kInvalidArgument;
  if (EndsWith(code, "not_found")) return ErrorCode::kNotFound;
  if (code == "payload_too_large" || code == "queue_full") return ErrorCode::kResourceExhausted;
  if (code == "timeout" || code == "queue_timeout") return ErrorCode::kTimeout;
  if (code == "shutting_down" || code == "boot_mode_unavailable") return ErrorCode::kUnavailable;
  if (code == "deploy_in_progress") return ErrorCode::kBusy;
  // What remains is either a failure of the function (exit 1, like the function's own error)
  // or a code this client does not know: judge by the status.
  switch (error.status) {
    case 400:
    case 405:
      return ErrorCode::kInvalidArgument;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kBusy;
    case 413:
    case 429:
      return ErrorCode::kResourceExhausted;
    case 503:
      return ErrorCode::kUnavailable;
    case 504:
      return ErrorCode::kTimeout;
    default:
      return ErrorCode::kInternal;
  }
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::optional<ApiError> ParseApiError(const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) return std::nullopt;
  ApiError error;
  error.status = response.status;
  auto doc = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.contains("error") && doc["error"].is_object()) {
    const auto& object = doc["error"];
    error.code = StringField(object, "code");
    error.message = StringField(object, "message");
    error.type = StringField(object, "type");
    error.traceback = StringField(object, "traceback");
    error.output = StringField(object, "output");
  } else {
    std::string_view body = Trim(response.body);
    while (!body.empty() && body.back() == '\n') body.remove_suffix(1);
    error.message = std::string(body.substr(0, 500));
  }
  if (error.message.empty()) {
    error.message = "the daemon answered " + std::to_string(response.status) + " " +
                    std::string(StatusReason(response.status));
  }
  return error;
}

Error ToError(const ApiError& error, std::string_view context) {
  std::string message(context);
  if (!message.empty()) message += ": ";
  if (!error.code.empty()) message += error.code + ": ";
  // A handler's exception reads like Python prints it: "ZeroDivisionError: division by zero".
  if (!error.type.empty() && error.message.rfind(error.type, 0) != 0) {
    message += error.type + ": ";
  }
  message += error.message;
  return Error(CodeFor(error), std::move(message));
}

std::vector<std::pair<std::string, double>> ParseServerTiming(std::string_view header) {
  std::vector<std::pair<std::string, double>> out;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view entry = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    size_t semicolon = entry.find(';');
    std::string_view name = Trim(entry.substr(0, semicolon));
    if (name.empty() || semicolon == std::string_view::npos) continue;
    std::string_view params = entry.substr(semicolon + 1);
    // Parameters: "dur=1.2;desc=..." in any order.
    while (!params.empty()) {
      size_t next = params.find(';');
      std::string_view param = Trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.rfind("dur=", 0) != 0) continue;
      std::string_view value = param.substr(4);
      double ms = 0;
      auto [end, parse_error] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (parse_error == std::errc() && end == value.data() + value.size()) {
        out.emplace_back(std::string(name), ms);
      }
      break;
    }
  }
  return out;
}

InvokeMetadata ParseInvokeMetadata(const HttpResponse& response) {
  InvokeMetadata meta;
  meta.request_id = response.Header("x-ember-request-id").value_or("");
  meta.instance = response.Header("x-ember-instance").value_or("");
  meta.boot_mode = response.Header("x-ember-boot-mode").value_or("");
  meta.function_error = response.Header("x-ember-function-error").has_value();
  meta.timings_ms = ParseServerTiming(response.Header("server-timing").value_or(""));
  return meta;
}

}  // namespace ember::daemon
