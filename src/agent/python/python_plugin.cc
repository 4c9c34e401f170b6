// ember-python.so: CPython 3.11 embedded for ember-agent, behind the C ABI of
// agent/python_plugin.h. The interpreter is configured here; the handler logic lives in the
// bootstrap module (bootstrap.cc).
#define PY_SSIZE_T_CLEAN
#include "agent/python_plugin.h"

#include <Python.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "agent/python/bootstrap.h"

namespace ember::agent::python {
namespace {

// Type of the errors that come from the plugin itself rather than from the function's code.
constexpr const char* kPythonInitFailed = "PythonInitFailed";
constexpr const char* kInternalError = "AgentInternalError";

// _ember_bootstrap.invoke; a strong reference held for the life of the process.
PyObject* g_invoke = nullptr;

char* Dup(std::string_view text) {
  auto* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  return copy;
}

void SetError(ember_plugin_error* error, std::string_view type, std::string_view message,
              std::string_view traceback = "") {
  error->type = Dup(type);
  error->message = Dup(message);
  error->traceback = traceback.empty() ? nullptr : Dup(traceback);
}

// UTF-8 of a str; lone surrogates (possible in exception messages) become escapes instead of
// failing the conversion.
std::string Utf8(PyObject* object) {
  if (object == nullptr || !PyUnicode_Check(object)) return "";
  PyObject* bytes = PyUnicode_AsEncodedString(object, "utf-8", "backslashreplace");
  if (bytes == nullptr) {
    PyErr_Clear();
    return "";
  }
  std::string text(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return text;
}

// The pending Python exception, for failures of the plugin's own calls (not the handler's).
void SetErrorFromPython(ember_plugin_error* error, std::string_view what) {
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string message(what);
  if (type != nullptr)
    message += std::string(": ") + reinterpret_cast<PyTypeObject*>(type)->tp_name;
  if (value != nullptr) {
    if (PyObject* text = PyObject_Str(value)) {
      message += ": " + Utf8(text);
      Py_DECREF(text);
    } else {
      PyErr_Clear();
    }
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  SetError(error, kInternalError, message);
}

// A (type, message, traceback) triple from the bootstrap, starting at index `first`.
void SetErrorFromTuple(ember_plugin_error* error, PyObject* tuple, Py_ssize_t first) {
  if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < first + 3) {
    SetError(error, kInternalError, "the bootstrap returned a malformed error");
    return;
  }
  SetError(error, Utf8(PyTuple_GET_ITEM(tuple, first)), Utf8(PyTuple_GET_ITEM(tuple, first + 1)),
           Utf8(PyTuple_GET_ITEM(tuple, first + 2)));
}

bool StatusOk(const PyStatus& status, std::string_view step, ember_plugin_error* error) {
  if (!PyStatus_Exception(status)) return true;
  std::string message(step);
  if (status.func != nullptr) message += std::string(": ") + status.func;
  message += status.err_msg != nullptr ? std::string(": ") + status.err_msg
                                       : ": exit status " + std::to_string(status.exitcode);
  SetError(error, kPythonInitFailed, message);
  return false;
}

bool StartInterpreter(ember_plugin_error* error) {
  PyPreConfig preconfig;
  PyPreConfig_InitIsolatedConfig(&preconfig);
  // UTF-8 everywhere, whatever locale the image has (usually none: "C").
  preconfig.utf8_mode = 1;
  if (!StatusOk(Py_PreInitialize(&preconfig), "pre-initialize Python", error)) return false;

  // Isolated: no PYTHON* variables, no user site, no script directory on sys.path.
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.write_bytecode = 0;  // the code directory is read-only
  config.buffered_stdio = 0;  // print() reaches the log at once, even if the instance is killed
  config.user_site_directory = 0;
  config.install_signal_handlers = 0;  // the agent owns signal dispositions
  config.pathconfig_warnings = 0;
  config.site_import = 1;  // Debian's site module adds dist-packages
  // sys.prefix is derived from the program name: /usr, where the image's Python lives.
  PyStatus status = PyConfig_SetString(&config, &config.program_name, L"/usr/bin/python3.11");
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  return StatusOk(status, "initialize Python", error);
}

// With the GIL held: runs the bootstrap and imports the handler.
int LoadHandler(const char* code_dir, const char* module_name, const char* function,
                ember_plugin_error* error) {
  PyObject* code = Py_CompileString(kBootstrapSource, "<ember-bootstrap>", Py_file_input);
  if (code == nullptr) {
    SetErrorFromPython(error, "compile the bootstrap module");
    return 1;
  }
  PyObject* bootstrap = PyImport_ExecCodeModule("_ember_bootstrap", code);
  Py_DECREF(code);
  if (bootstrap == nullptr) {
    SetErrorFromPython(error, "run the bootstrap module");
    return 1;
  }
  PyObject* failure =
      PyObject_CallMethod(bootstrap, "load", "sss", code_dir, module_name, function);
  if (failure == nullptr) {
    SetErrorFromPython(error, "load the handler");
    Py_DECREF(bootstrap);
    return 1;
  }
  int rc = 0;
  if (failure != Py_None) {
    SetErrorFromTuple(error, failure, 0);
    rc = 1;
  } else {
    g_invoke = PyObject_GetAttrString(bootstrap, "invoke");
    if (g_invoke == nullptr) {
      SetErrorFromPython(error, "find the bootstrap's invoke");
      rc = 1;
    }
  }
  Py_DECREF(failure);
  Py_DECREF(bootstrap);
  return rc;
}

int Init(const char* code_dir, const char* module_name, const char* function,
         ember_plugin_error* error) {
  if (Py_IsInitialized()) {
    SetError(error, kPythonInitFailed, "the Python interpreter is already initialized");
    return 1;
  }
  if (!StartInterpreter(error)) return 1;
  int rc = LoadHandler(code_dir, module_name, function, error);
  // Invocations take the GIL per call (PyGILState_Ensure), from whichever thread serves them.
  PyEval_SaveThread();
  return rc;
}

// With the GIL held.
int InvokeLocked(const char* event, size_t event_size, const ember_context* context, char** result,
                 size_t* result_size, ember_plugin_error* error) {
  PyObject* outcome = PyObject_CallFunction(
      g_invoke, "y#ssKK", event, static_cast<Py_ssize_t>(event_size), context->request_id,
      context->function_name, static_cast<unsigned long long>(context->memory_limit_bytes),
      static_cast<unsigned long long>(context->timeout_ms));
  if (outcome == nullptr) {
    SetErrorFromPython(error, "call the handler");
    return 1;
  }
  int rc = 1;
  if (!PyTuple_Check(outcome) || PyTuple_GET_SIZE(outcome) < 2) {
    SetError(error, kInternalError, "the bootstrap returned a malformed outcome");
  } else if (PyTuple_GET_ITEM(outcome, 0) != Py_True) {
    SetErrorFromTuple(error, outcome, 1);
  } else {
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(outcome, 1), &size);
    if (text == nullptr) {
      SetErrorFromPython(error, "convert the result");
    } else if ((*result = Dup(std::string_view(text, static_cast<size_t>(size)))) == nullptr) {
      SetError(error, "MemoryError",
               "no memory for a result of " + std::to_string(size) + " bytes");
    } else {
      *result_size = static_cast<size_t>(size);
      rc = 0;
    }
  }
  Py_DECREF(outcome);
  return rc;
}

int Invoke(const char* event, size_t event_size, const ember_context* context, char** result,
           size_t* result_size, ember_plugin_error* error) {
  if (g_invoke == nullptr) {
    SetError(error, kInternalError, "invoke before a successful init");
    return 1;
  }
  PyGILState_STATE gil = PyGILState_Ensure();
  int rc = InvokeLocked(event, event_size, context, result, result_size, error);
  PyGILState_Release(gil);
  return rc;
}

// The dict behind os.environ (os._Environ._data in CPython 3.11: encoded names to encoded values)
// and the encoded name EMBER_INSTANCE, looked up by a template before it forks (Freeze). A forked
// child then records its id with one dict store (the agent has already called setenv) instead of
// importing os and running os.environ.__setitem__: that import's Python code and the setter
// wrote into about 30 pages of the template's objects, each then copied (≈115 KiB per child).
PyObject* g_environ_data = nullptr;
PyObject* g_instance_key = nullptr;

// With the GIL held. Leaves the two unset (the child takes the slow path) if os.environ is not
// what CPython 3.11 makes it.
void FindEnvironData() {
  PyObject* os = PyImport_ImportModule("os");
  PyObject* environ = os ? PyObject_GetAttrString(os, "environ") : nullptr;
  PyObject* data = environ ? PyObject_GetAttrString(environ, "_data") : nullptr;
  PyObject* key = PyBytes_FromString("EMBER_INSTANCE");
  if (data != nullptr && PyDict_CheckExact(data) && key != nullptr) {
    g_environ_data = data;
    g_instance_key = key;
  } else {
    Py_XDECREF(data);
    Py_XDECREF(key);
  }
  PyErr_Clear();
  Py_XDECREF(environ);
  Py_XDECREF(os);
}

// With the GIL held.
int SetInstanceInEnviron(const char* instance_id, ember_plugin_error* error) {
  if (g_environ_data != nullptr) {
    // What os.environ's setter stores on POSIX: the value encoded with the file system encoding
    // (UTF-8 here); the id is ASCII.
    PyObject* value = PyBytes_FromString(instance_id);
    int rc = value != nullptr ? PyDict_SetItem(g_environ_data, g_instance_key, value) : -1;
    Py_XDECREF(value);
    if (rc == 0) return 0;
    SetErrorFromPython(error, "set EMBER_INSTANCE after fork");
    return 1;
  }
  int rc = 0;
  PyObject* os = PyImport_ImportModule("os");
  PyObject* mapping = os ? PyObject_GetAttrString(os, "environ") : nullptr;
  PyObject* value = PyUnicode_FromString(instance_id);
  if (mapping == nullptr || value == nullptr ||
      PyMapping_SetItemString(mapping, "EMBER_INSTANCE", value) != 0) {
    SetErrorFromPython(error, "set EMBER_INSTANCE after fork");
    rc = 1;
  }
  Py_XDECREF(value);
  Py_XDECREF(mapping);
  Py_XDECREF(os);
  return rc;
}

// The GIL state taken by BeforeFork, released by AfterForkParent or AfterForkChild.
PyGILState_STATE g_fork_gil;

char* Freeze() {
  PyGILState_STATE gil = PyGILState_Ensure();
  // Before the freeze, so that what the warm-up leaves behind is frozen too. A failure only costs
  // the children memory.
  if (PyObject* warm = PyRun_String("__import__('_ember_bootstrap').warm_up()", Py_eval_input,
                                    PyEval_GetBuiltins(), nullptr)) {
    Py_DECREF(warm);
  } else {
    PyErr_Clear();
  }
  FindEnvironData();
  std::string names;
  // threading is asked only if the function imported it: without it no Python thread can have
  // been started through it (the template counts the OS threads as well), and importing it here
  // would register its after-fork hook, which every child would then run, writing to (and so
  // copying) pages of the template's objects.
  PyObject* result = PyRun_String(
      "__import__('gc').freeze() or (', '.join(t.name for t in __import__('sys').modules["
      "'threading'].enumerate() if t is not __import__('sys').modules['threading'].main_thread())"
      " if 'threading' in __import__('sys').modules else '')",
      Py_eval_input, PyEval_GetBuiltins(), nullptr);
  if (result == nullptr) {
    PyErr_Clear();
  } else {
    names = Utf8(result);
    Py_DECREF(result);
  }
  PyGILState_Release(gil);
  return names.empty() ? nullptr : Dup(names);
}

void BeforeFork() {
  g_fork_gil = PyGILState_Ensure();
  PyOS_BeforeFork();
}

void AfterForkParent() {
  PyOS_AfterFork_Parent();
  PyGILState_Release(g_fork_gil);
}

int AfterForkChild(const char* instance_id, ember_plugin_error* error) {
  PyOS_AfterFork_Child();
  int rc = SetInstanceInEnviron(instance_id, error);
  PyGILState_Release(g_fork_gil);
  return rc;
}

}  // namespace
}  // namespace ember::agent::python

extern "C" __attribute__((visibility("default"))) const ember_python_plugin*
ember_python_plugin_entry(void) {
  static const ember_python_plugin plugin = {
      EMBER_PYTHON_PLUGIN_ABI_VERSION,      &ember::agent::python::Init,
      &ember::agent::python::Invoke,        &ember::agent::python::Freeze,
      &ember::agent::python::BeforeFork,    &ember::agent::python::AfterForkParent,
      &ember::agent::python::AfterForkChild};
  return &plugin;
}
