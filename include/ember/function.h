/* The C ABI of a native ember function: a shared library in the function's code directory that
 * exports a handler (named in ember.toml as handler = "lib.so:symbol") and, optionally,
 * ember_function_init.
 *
 * The agent (ember-agent, pid 1 of the sandbox) dlopens the library once, at instance init, with
 * RTLD_NOW, then calls ember_function_init if the library exports it. Each invocation calls the
 * handler with the event; with `concurrency` > 1 in ember.toml the handler is called from several
 * threads at once and must be thread-safe. The library may use anything libc offers; stdout and
 * stderr go to the function's logs.
 *
 * A minimal handler:
 *
 *   #include <ember/function.h>
 *   #include <stdlib.h>
 *   #include <string.h>
 *
 *   int handle(const char* event, size_t event_size, const ember_context* context,
 *              char** result, size_t* result_size) {
 *     (void)context;
 *     *result = malloc(event_size);             // echo the event back
 *     if (*result == NULL) return 1;            // *result NULL: the message is "handler failed"
 *     memcpy(*result, event, event_size);
 *     *result_size = event_size;
 *     return 0;
 *   }
 */
#ifndef EMBER_FUNCTION_H_
#define EMBER_FUNCTION_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_FUNCTION_ABI_VERSION 1

/* Facts about the invocation. The pointers are valid until the handler returns. */
typedef struct ember_context {
  const char* request_id;      /* the API's id for this invocation ("req-..."), or "warmup" */
  const char* function_name;   /* the function's name in ember */
  uint64_t memory_limit_bytes; /* 0 = unlimited */
  uint64_t timeout_ms;         /* time left when the invocation started */
} ember_context;

/* The handler named in ember.toml as "lib.so:symbol". event: JSON text, NUL-terminated,
 * event_size bytes. On success return 0 and set *result and *result_size to a malloc'ed JSON text
 * the agent frees with free(). On failure return non-zero and set *result to a malloc'ed
 * NUL-terminated message (or NULL).
 *
 * The agent checks that a successful result is valid JSON (else the invocation fails with
 * "InvalidResult") and at most 16 MiB ("ResultTooLarge"); a failure becomes an error of type
 * "HandlerError" carrying the message. */
typedef int (*ember_handler_fn)(const char* event, size_t event_size, const ember_context* context,
                                char** result, size_t* result_size);

/* Optional: exported by the library, called once at init; non-zero fails the init (the
 * instance never becomes ready and the error names the returned value). */
int ember_function_init(void);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_FUNCTION_H_ */
