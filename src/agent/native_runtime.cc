#include "agent/native_runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

namespace ember::agent {
namespace {

// A failed handler's message is NUL-terminated by contract; the bound keeps a missing terminator
// from running off into the heap for long.
constexpr size_t kMaxMessage = 64u << 10;

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

std::string DlError(const char* fallback) {
  const char* text = ::dlerror();
  return text ? text : fallback;
}

}  // namespace

tl::expected<NativeHandlerName, ErrorInfo> ParseNativeHandler(std::string_view handler) {
  size_t colon = handler.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == handler.size()) {
    return tl::unexpected(MakeError(kInvalidHandler, "native handler " + QuoteForMessage(handler) +
                                                         " must be \"path/lib.so:symbol\""));
  }
  NativeHandlerName name{std::string(handler.substr(0, colon)),
                         std::string(handler.substr(colon + 1))};
  if (name.library.front() == '/') {
    return tl::unexpected(
        MakeError(kInvalidHandler, "native handler library " + QuoteForMessage(name.library) +
                                       " must be relative to the code directory"));
  }
  return name;
}

InitOutcome NativeRuntime::Init(const InitRequest& init) {
  auto name = ParseNativeHandler(init.handler);
  if (!name) return tl::unexpected(std::move(name).error());
  function_name_ = init.function;
  memory_limit_bytes_ = init.memory_limit_bytes;
  library_ = name->library;
  std::string path = init.code_dir + "/" + name->library;
  // RTLD_LOCAL: the function's symbols stay its own and cannot interpose on the agent's.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return tl::unexpected(
        MakeError("LibraryLoadFailed", "load " + name->library + ": " + DlError("dlopen failed")));
  }
  ::dlerror();
  void* symbol = ::dlsym(handle, name->symbol.c_str());
  if (symbol == nullptr) {
    return tl::unexpected(MakeError(kHandlerNotFound, name->library + " has no symbol " +
                                                          QuoteForMessage(name->symbol) + " (" +
                                                          DlError("not found") + ")"));
  }
  handler_ = reinterpret_cast<ember_handler_fn>(symbol);
  ::dlerror();
  if (void* init_symbol = ::dlsym(handle, "ember_function_init")) {
    auto init_fn = reinterpret_cast<int (*)()>(init_symbol);
    if (int rc = init_fn(); rc != 0) {
      return tl::unexpected(MakeError(
          "FunctionInitFailed",
          "ember_function_init() in " + name->library + " returned " + std::to_string(rc)));
    }
  }
  return {};
}

InvokeOutcome NativeRuntime::Invoke(const InvokeRequest& request) {
  ember_context context{request.request_id.c_str(), function_name_.c_str(), memory_limit_bytes_,
                        request.timeout_ms};
  char* raw_result = nullptr;
  size_t result_size = 0;
  int rc =
      handler_(request.event.c_str(), request.event.size(), &context, &raw_result, &result_size);
  std::unique_ptr<char, FreeDeleter> result(raw_result);
  if (rc != 0) {
    std::string message = result ? std::string(result.get(), ::strnlen(result.get(), kMaxMessage))
                                 : "handler returned " + std::to_string(rc);
    return tl::unexpected(MakeError("HandlerError", std::move(message)));
  }
  if (!result) {
    return tl::unexpected(
        MakeError("InvalidResult", "the handler returned 0 but set no result (*result is NULL)"));
  }
  if (result_size > kMaxPayload) {
    return tl::unexpected(
        MakeError(kResultTooLarge, "the result is " + std::to_string(result_size) +
                                       " bytes, the limit is " + std::to_string(kMaxPayload)));
  }
  std::string_view text(result.get(), result_size);
  if (!nlohmann::json::accept(text)) {
    return tl::unexpected(
        MakeError("InvalidResult", "the result is not valid JSON: " + QuoteForMessage(text)));
  }
  return std::string(text);
}

}  // namespace ember::agent
