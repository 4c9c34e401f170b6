// The python3.11 runtime, seen from the agent: it loads ember-python.so (the embedded CPython,
// see src/agent/python/) from the agent's own directory and forwards to it. The handler string is
// "module.func", where the module may be dotted ("pkg.mod.func").
#pragma once

#include <string>

#include "agent/python_plugin.h"
#include "agent/runtime.h"

namespace ember::agent {

struct PythonHandlerName {
  std::string module;
  std::string function;
};
// Splits "pkg.mod.func" at the last '.'; refuses an empty module or function name.
tl::expected<PythonHandlerName, ErrorInfo> ParsePythonHandler(std::string_view handler);

// Where the plugin is: next to the agent's executable (/.ember/ in a sandbox, build/bin on the
// host).
std::string PythonPluginPath();

class PythonRuntime : public Runtime {
 public:
  InitOutcome Init(const InitRequest& init) override;
  InvokeOutcome Invoke(const InvokeRequest& request) override;
  std::string ForkRefusal() override;
  void BeforeFork() override { plugin_->before_fork(); }
  void AfterForkParent() override { plugin_->after_fork_parent(); }
  InitOutcome AfterForkChild(const std::string& instance_id) override;

 private:
  const ember_python_plugin* plugin_ = nullptr;  // the library is never unloaded
  std::string function_name_;
  uint64_t memory_limit_bytes_ = 0;
};

}  // namespace ember::agent
