/* The C ABI between ember-agent and its Python plugin, ember-python.so. The plugin is a separate
 * library because it links libpython3.11: the agent itself must start in images without Python.
 * Only C types cross the boundary (each side has its own static libstdc++); strings the plugin
 * hands over are malloc'ed and the agent releases them with free().
 *
 * The agent dlopens the plugin with RTLD_NOW | RTLD_GLOBAL (CPython's extension modules in
 * lib-dynload are not linked against libpython and need its symbols in the global scope), then
 * calls EMBER_PYTHON_PLUGIN_ENTRY and checks abi_version. */
#ifndef EMBER_AGENT_PYTHON_PLUGIN_H_
#define EMBER_AGENT_PYTHON_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

/* The agent target has only src/ on its include path; the public header lives in include/. */
#include "ember/function.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_PYTHON_PLUGIN_ABI_VERSION 2
#define EMBER_PYTHON_PLUGIN_ENTRY "ember_python_plugin_entry"

/* A failure, as the daemon will see it. Every field is malloc'ed (or NULL). */
typedef struct ember_plugin_error {
  char* type;
  char* message;
  char* traceback;
} ember_plugin_error;

typedef struct ember_python_plugin {
  uint32_t abi_version; /* EMBER_PYTHON_PLUGIN_ABI_VERSION */
  /* Starts the interpreter (sys.path[0] = code_dir), imports `module` and looks up `function`.
   * Called once, on the main thread. Returns 0, or non-zero with *error filled in. On return
   * the calling thread no longer holds the GIL. */
  int (*init)(const char* code_dir, const char* module, const char* function,
              ember_plugin_error* error);
  /* Calls the handler with the event (JSON text). Thread-safe: takes the GIL itself. Returns 0
   * with *result (malloc'ed JSON text, *result_size bytes), or non-zero with *error. */
  int (*invoke)(const char* event, size_t event_size, const ember_context* context, char** result,
                size_t* result_size, ember_plugin_error* error);
  /* Fork boot. freeze: gc.freeze(); returns the names of the threads the function started
   * (malloc'ed, ", "-separated; NULL when there are none). */
  char* (*freeze)(void);
  /* Around the template's clone: before_fork takes the GIL and runs PyOS_BeforeFork;
   * after_fork_parent undoes both. after_fork_child runs PyOS_AfterFork_Child (at-fork hooks:
   * random reseeds itself), sets os.environ["EMBER_INSTANCE"], then releases the GIL. */
  void (*before_fork)(void);
  void (*after_fork_parent)(void);
  int (*after_fork_child)(const char* instance_id, ember_plugin_error* error);
} ember_python_plugin;

typedef const ember_python_plugin* (*ember_python_plugin_entry_fn)(void);

/* Exported by the plugin under the name EMBER_PYTHON_PLUGIN_ENTRY. */
const ember_python_plugin* ember_python_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_AGENT_PYTHON_PLUGIN_H_ */
