#include "agent/python_runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace ember::agent {
namespace {

// Takes ownership of the plugin's malloc'ed error strings.
ErrorInfo TakeError(ember_plugin_error* error) {
  auto take = [](char*& text) {
    std::string value = text ? text : "";
    std::free(text);
    text = nullptr;
    return value;
  };
  ErrorInfo info{take(error->type), take(error->message), take(error->traceback)};
  if (info.type.empty()) info.type = "PythonError";
  return info;
}

}  // namespace

tl::expected<PythonHandlerName, ErrorInfo> ParsePythonHandler(std::string_view handler) {
  size_t dot = handler.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == handler.size() ||
      handler[dot - 1] == '.') {
    return tl::unexpected(MakeError(kInvalidHandler, "python handler " + QuoteForMessage(handler) +
                                                         " must be \"module.function\""));
  }
  return PythonHandlerName{std::string(handler.substr(0, dot)),
                           std::string(handler.substr(dot + 1))};
}

std::string PythonPluginPath() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  // Without /proc the sandbox layout is the best guess.
  if (n <= 0) return "/.ember/ember-python.so";
  std::string dir(self, static_cast<size_t>(n));
  size_t slash = dir.rfind('/');
  dir.resize(slash == std::string::npos ? 0 : slash);
  return dir + "/ember-python.so";
}

InitOutcome PythonRuntime::Init(const InitRequest& init) {
  auto name = ParsePythonHandler(init.handler);
  if (!name) return tl::unexpected(std::move(name).error());
  function_name_ = init.function;
  memory_limit_bytes_ = init.memory_limit_bytes;

  std::string path = PythonPluginPath();
  // RTLD_GLOBAL: extension modules (lib-dynload/*.so) resolve libpython's symbols globally.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return tl::unexpected(MakeError("RuntimeLoadFailed", "load the Python runtime " + path + ": " +
                                                             (why ? why : "dlopen failed")));
  }
  auto entry =
      reinterpret_cast<ember_python_plugin_entry_fn>(::dlsym(handle, EMBER_PYTHON_PLUGIN_ENTRY));
  const ember_python_plugin* plugin = entry ? entry() : nullptr;
  if (plugin == nullptr || plugin->abi_version != EMBER_PYTHON_PLUGIN_ABI_VERSION) {
    return tl::unexpected(
        MakeError("RuntimeLoadFailed",
                  path + " is not an ember Python plugin of ABI version " +
                      std::to_string(EMBER_PYTHON_PLUGIN_ABI_VERSION) +
                      (plugin ? " (it has version " + std::to_string(plugin->abi_version) + ")"
                              : " (no " EMBER_PYTHON_PLUGIN_ENTRY ")")));
  }
  ember_plugin_error error{};
  if (plugin->init(init.code_dir.c_str(), name->module.c_str(), name->function.c_str(), &error) !=
      0) {
    return tl::unexpected(TakeError(&error));
  }
  plugin_ = plugin;
  return {};
}

InvokeOutcome PythonRuntime::Invoke(const InvokeRequest& request) {
  ember_context context{request.request_id.c_str(), function_name_.c_str(), memory_limit_bytes_,
                        request.timeout_ms};
  char* result = nullptr;
  size_t result_size = 0;
  ember_plugin_error error{};
  if (plugin_->invoke(request.event.data(), request.event.size(), &context, &result, &result_size,
                      &error) != 0) {
    return tl::unexpected(TakeError(&error));
  }
  std::string text(result ? result : "", result ? result_size : 0);
  std::free(result);
  return text;
}

}  // namespace ember::agent

namespace ember::agent {

// gc.freeze() happens here too: the template freezes right after it checked it can fork.
std::string PythonRuntime::ForkRefusal() {
  char* names = plugin_->freeze();
  if (names == nullptr) return "";
  std::string threads = names;
  std::free(names);
  return "the function started threads while it was imported (" + threads +
         "), and a fork would copy only one of them";
}

InitOutcome PythonRuntime::AfterForkChild(const std::string& instance_id) {
  ember_plugin_error error{};
  if (plugin_->after_fork_child(instance_id.c_str(), &error) != 0) {
    return tl::unexpected(TakeError(&error));
  }
  return {};
}

}  // namespace ember::agent
