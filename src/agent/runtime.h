// What the agent loop needs from a language runtime: load the handler once, then run
// invocations. Failures are ErrorInfo values, because they go to the daemon as they are
// (kInitFailed / kError); the runtime names the cause in the function's terms ("module 'app' has
// no function 'handle'"), not the agent's.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "agent/protocol.h"

namespace ember::agent {

using InitOutcome = tl::expected<void, ErrorInfo>;
// The handler's result as JSON text, or why there is none.
using InvokeOutcome = tl::expected<std::string, ErrorInfo>;

class Runtime {
 public:
  virtual ~Runtime() = default;

  // Loads the handler named by init.handler from init.code_dir. Called once, on the main thread,
  // while the agent is single-threaded.
  virtual InitOutcome Init(const InitRequest& init) = 0;

  // Runs the handler on one event. Thread-safe: with concurrency > 1 it is called from several
  // worker threads at once (a runtime that cannot overlap calls serializes them itself).
  virtual InvokeOutcome Invoke(const InvokeRequest& request) = 0;

  // False once the runtime can serve nothing more (the process runtime's child exited); the
  // agent then exits after answering, and the daemon replaces the instance.
  virtual bool Usable() const { return true; }

  // Fork boot (template_loop.h). Why this runtime cannot be forked ("" = it can), checked after
  // init and warmup; the template also refuses when the process has more than one thread.
  virtual std::string ForkRefusal() { return ""; }
  // Once, before the template serves spawns (Python: gc.freeze(), so that children do not
  // write to the template's objects when they collect garbage).
  virtual void Freeze() {}
  // Around each clone of a child, in the template.
  virtual void BeforeFork() {}
  virtual void AfterForkParent() {}
  // In the child, once it is sandboxed and before it serves anything: the runtime's own
  // after-fork work (Python: PyOS_AfterFork_Child, which runs os.register_at_fork hooks such as
  // random's reseed) and the child's identity (EMBER_INSTANCE).
  virtual InitOutcome AfterForkChild(const std::string& instance_id) {
    (void)instance_id;
    return {};
  }
  // In an instance restored from a snapshot (cold and warm boot), before it serves anything:
  // the same hooks as a forked child, since a restored process is a copy of the one that was
  // checkpointed exactly as a forked child is a copy of its template.
  InitOutcome AfterRestore(const std::string& instance_id) {
    BeforeFork();
    return AfterForkChild(instance_id);
  }
};

// The runtime for InitRequest.runtime ("python3.11", "native", "process"), or an
// "UnsupportedRuntime" error naming the ones that exist.
tl::expected<std::unique_ptr<Runtime>, ErrorInfo> MakeRuntime(std::string_view name);

// Error types every runtime uses, so the daemon and the docs can rely on the names.
inline constexpr const char* kInvalidHandler = "InvalidHandler";    // handler string malformed
inline constexpr const char* kHandlerNotFound = "HandlerNotFound";  // module/symbol lacks it
inline constexpr const char* kInvalidEvent = "InvalidEvent";        // event is not JSON
inline constexpr const char* kResultTooLarge = "ResultTooLarge";    // result > kMaxPayload

ErrorInfo MakeError(std::string type, std::string message, std::string traceback = "");

// `text` for an error message: at most `limit` bytes, quoted, with "..." when cut (so a runaway
// output line cannot fill an error).
std::string QuoteForMessage(std::string_view text, size_t limit = 200);

}  // namespace ember::agent
