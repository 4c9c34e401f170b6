#include "agent/runtime.h"

#include <cstdio>

#include "agent/native_runtime.h"
#include "agent/process_runtime.h"
#include "agent/python_runtime.h"

namespace ember::agent {

tl::expected<std::unique_ptr<Runtime>, ErrorInfo> MakeRuntime(std::string_view name) {
  if (name == "python3.11") return std::make_unique<PythonRuntime>();
  if (name == "native") return std::make_unique<NativeRuntime>();
  if (name == "process") return std::make_unique<ProcessRuntime>();
  return tl::unexpected(
      MakeError("UnsupportedRuntime", "runtime " + QuoteForMessage(name) +
                                          " is not supported (use python3.11, native or process)"));
}

ErrorInfo MakeError(std::string type, std::string message, std::string traceback) {
  return ErrorInfo{std::move(type), std::move(message), std::move(traceback)};
}

std::string QuoteForMessage(std::string_view text, size_t limit) {
  bool cut = text.size() > limit;
  if (cut) text = text.substr(0, limit);
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  out += cut ? "\"..." : "\"";
  return out;
}

}  // namespace ember::agent
