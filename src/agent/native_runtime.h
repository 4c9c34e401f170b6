// The native runtime: a shared library from the function's code, called through the C ABI of
// include/ember/function.h. The handler string is "path/lib.so:symbol" with the path relative to
// the code directory.
#pragma once

#include <string>

#include "agent/runtime.h"
// The agent target has only src/ on its include path; the public header lives in include/.
#include "ember/function.h"

namespace ember::agent {

struct NativeHandlerName {
  std::string library;  // relative to the code directory
  std::string symbol;
};
// Splits "path/lib.so:symbol" at the last ':'; refuses an absolute path or an empty part.
tl::expected<NativeHandlerName, ErrorInfo> ParseNativeHandler(std::string_view handler);

class NativeRuntime : public Runtime {
 public:
  NativeRuntime() = default;
  NativeRuntime(const NativeRuntime&) = delete;
  NativeRuntime& operator=(const NativeRuntime&) = delete;
  // The library stays loaded for the life of the process: worker threads may still be inside it
  // when the agent exits, so it is never dlclosed.
  ~NativeRuntime() override = default;

  InitOutcome Init(const InitRequest& init) override;
  InvokeOutcome Invoke(const InvokeRequest& request) override;

 private:
  std::string function_name_;
  std::string library_;
  uint64_t memory_limit_bytes_ = 0;
  ember_handler_fn handler_ = nullptr;
};

}  // namespace ember::agent
