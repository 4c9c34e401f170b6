#include "agent/process_runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace ember::agent {
namespace {

using Json = nlohmann::json;

constexpr const char* kInvalidResponse = "InvalidResponse";
constexpr const char* kProcessExited = "ProcessExited";

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

ErrorInfo Invalid(std::string message) { return MakeError(kInvalidResponse, std::move(message)); }

// nlohmann parses iteratively but serializes recursively: a result nested a million levels deep
// would overflow the stack when re-encoded. Python's json refuses ~1000 levels, so does this.
constexpr size_t kMaxNesting = 1000;

size_t NestingDepth(std::string_view json) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// False when the reader is gone (EPIPE) or another write error occurs.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

LineReader::Status LineReader::ReadLine(int fd, std::string* line) {
  size_t scanned = 0;  // bytes of buffer_ known to hold no '\n'
  bool too_long = false;
  char chunk[64 << 10];
  for (;;) {
    size_t newline = buffer_.find('\n', scanned);
    if (newline != std::string::npos) {
      if (too_long || newline > max_line_) {
        buffer_.erase(0, newline + 1);
        return Status::kTooLong;
      }
      line->assign(buffer_, 0, newline);
      buffer_.erase(0, newline + 1);
      return Status::kLine;
    }
    if (buffer_.size() > max_line_) {
      // Keep reading to find the end of the line, but hold none of it.
      too_long = true;
      buffer_.clear();
    }
    scanned = buffer_.size();
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::kError;
    }
    if (n == 0) return Status::kEof;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::string MakeRequestLine(const InvokeRequest& request, std::string_view function_name,
                            uint64_t memory_limit_bytes) {
  Json context = {{"request_id", request.request_id},
                  {"function_name", function_name},
                  {"memory_limit_bytes", memory_limit_bytes},
                  {"timeout_ms", request.timeout_ms}};
  std::string event = request.event.empty() ? "null" : request.event;
  for (char& c : event) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string line = "{\"request_id\":" + DumpJson(request.request_id) + ",\"event\":";
  line.reserve(line.size() + event.size() + 256);
  line += event;
  line += ",\"context\":" + DumpJson(context) + "}\n";
  return line;
}

InvokeOutcome ParseResponseLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (NestingDepth(line) > kMaxNesting) {
    return tl::unexpected(Invalid("the handler process's response is nested more than " +
                                  std::to_string(kMaxNesting) + " levels deep"));
  }
  Json response = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (response.is_discarded()) {
    return tl::unexpected(
        Invalid("the handler process wrote a line that is not JSON: " + QuoteForMessage(line)));
  }
  if (!response.is_object()) {
    return tl::unexpected(Invalid(
        "the handler process's response must be a JSON object with \"result\" or \"error\", "
        "not " +
        QuoteForMessage(line)));
  }
  auto result = response.find("result");
  auto error = response.find("error");
  if (result != response.end() && error != response.end()) {
    return tl::unexpected(
        Invalid("the handler process's response has both \"result\" and "
                "\"error\": " +
                QuoteForMessage(line)));
  }
  if (result != response.end()) return DumpJson(*result);
  if (error == response.end()) {
    return tl::unexpected(
        Invalid("the handler process's response has neither \"result\" nor "
                "\"error\": " +
                QuoteForMessage(line)));
  }
  if (!error->is_object()) {
    return tl::unexpected(
        Invalid("\"error\" in the handler process's response must be an object "
                "{\"type\": .., \"message\": ..}, not " +
                QuoteForMessage(DumpJson(*error))));
  }
  auto type = error->find("type");
  if (type == error->end() || !type->is_string() || type->get_ref<const std::string&>().empty()) {
    return tl::unexpected(
        Invalid("\"error\" in the handler process's response needs a non-empty string \"type\": " +
                QuoteForMessage(line)));
  }
  ErrorInfo info{type->get<std::string>(), "", ""};
  for (auto [key, field] : {std::pair{"message", &info.message}, {"traceback", &info.traceback}}) {
    auto it = error->find(key);
    if (it == error->end()) continue;
    if (!it->is_string()) {
      return tl::unexpected(Invalid(
          std::string("\"error\".\"") + key +
          "\" in the handler process's response must be a string: " + QuoteForMessage(line)));
    }
    *field = it->get<std::string>();
  }
  return tl::unexpected(std::move(info));
}

InitOutcome ProcessRuntime::Init(const InitRequest& init) {
  function_name_ = init.function;
  memory_limit_bytes_ = init.memory_limit_bytes;
  auto process = SpawnHandlerProcess(init.handler, init.code_dir);
  if (!process) return tl::unexpected(MakeError("ProcessStartFailed", process.error().ToString()));
  process_ = std::move(*process);
  return {};
}

InvokeOutcome ProcessRuntime::Invoke(const InvokeRequest& request) {
  std::lock_guard lock(mutex_);
  if (exited_) return tl::unexpected(exit_error_);
  if (!request.event.empty() && !Json::accept(request.event)) {
    return tl::unexpected(MakeError(kInvalidEvent, "the event is not valid JSON"));
  }
  if (reader_.pending() > 0) {
    // Output nobody asked for would be taken as the answer to this request.
    std::fprintf(stderr,
                 "ember-agent: the handler process wrote %zu bytes after its last response line "
                 "(dropped; write logs to stderr, not stdout)\n",
                 reader_.pending());
    reader_.DropPending();
  }
  std::string line = MakeRequestLine(request, function_name_, memory_limit_bytes_);
  if (!WriteAll(process_.to_child.get(), line)) {
    return tl::unexpected(
        ChildGone(errno == EPIPE ? "stopped reading its stdin" : "broke its stdin"));
  }
  std::string response;
  switch (reader_.ReadLine(process_.from_child.get(), &response)) {
    case LineReader::Status::kLine:
      return ParseResponseLine(response);
    case LineReader::Status::kTooLong:
      return tl::unexpected(Invalid("the handler process's response line exceeds " +
                                    std::to_string(kMaxPayload) + " bytes"));
    case LineReader::Status::kEof:
      return tl::unexpected(ChildGone("closed its stdout"));
    case LineReader::Status::kError:
      break;
  }
  return tl::unexpected(ChildGone("broke its stdout"));
}

ErrorInfo ProcessRuntime::ChildGone(std::string_view how) {
  // Closing our ends makes a child that is still running see EOF and EPIPE, so it can finish.
  process_.to_child.reset();
  process_.from_child.reset();
  pid_t pid = process_.child.pid();
  std::string message = "the handler process (pid " + std::to_string(pid) + ") ";
  auto status = process_.child.WaitFor(std::chrono::seconds(1));
  if (status && *status) {
    message += (*status)->Describe();
  } else {
    process_.child.KillAndReap();
    message += std::string(how) + " but kept running; killed it";
  }
  exit_error_ = MakeError(kProcessExited, std::move(message));
  exited_ = true;
  return exit_error_;
}

}  // namespace ember::agent
