// The Python half of the plugin: a small module, kept as source text inside ember-python.so,
// that imports the handler and runs invocations. The C++ half only moves bytes in and out.
#pragma once

namespace ember::agent::python {

// Module "_ember_bootstrap". It defines:
//   load(code_dir, module, function) -> None, or (type, message, traceback) on failure
//   invoke(event_bytes, request_id, function_name, memory_limit_bytes, timeout_ms)
//       -> (True, result_json) or (False, type, message, traceback)
//   warm_up() -> None: runs invoke's own path (not the handler) until CPython has specialized it;
//       a template calls it before it forks
// None raises for anything the handler does.
extern const char kBootstrapSource[];

}  // namespace ember::agent::python
