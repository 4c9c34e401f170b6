/* A native ember function for the agent's tests (tests/integration/agent_test.cc), built as
 * build/test-bin/native_echo_fn.so. Handlers:
 *   echo      returns {"event":<event>,"request_id":..,"function_name":..,"memory_limit_bytes":..,
 *             "timeout_ms":..,"initialized":true|false}
 *   fail      returns 2 with the message "native failure: the event was rejected"
 *   not_json  returns 0 with a result that is not JSON
 * ember_function_init fails (returns 7) when NATIVE_ECHO_FAIL_INIT is set in the environment. */
#include <ember/function.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_initialized;

int ember_function_init(void) {
  const char* fail = getenv("NATIVE_ECHO_FAIL_INIT");
  if (fail != NULL && *fail != '\0') return 7;
  g_initialized = 1;
  return 0;
}

static char* Copy(const char* text) {
  size_t size = strlen(text) + 1;
  char* copy = malloc(size);
  if (copy != NULL) memcpy(copy, text, size);
  return copy;
}

int echo(const char* event, size_t event_size, const ember_context* context, char** result,
         size_t* result_size) {
  const char* format =
      "{\"event\":%.*s,\"request_id\":\"%s\",\"function_name\":\"%s\","
      "\"memory_limit_bytes\":%" PRIu64 ",\"timeout_ms\":%" PRIu64 ",\"initialized\":%s}";
  int size =
      snprintf(NULL, 0, format, (int)event_size, event, context->request_id, context->function_name,
               context->memory_limit_bytes, context->timeout_ms, g_initialized ? "true" : "false");
  if (size < 0) return 1;
  *result = malloc((size_t)size + 1);
  if (*result == NULL) return 1;
  snprintf(*result, (size_t)size + 1, format, (int)event_size, event, context->request_id,
           context->function_name, context->memory_limit_bytes, context->timeout_ms,
           g_initialized ? "true" : "false");
  *result_size = (size_t)size;
  return 0;
}

int fail(const char* event, size_t event_size, const ember_context* context, char** result,
         size_t* result_size) {
  (void)event;
  (void)event_size;
  (void)context;
  (void)result_size;
  *result = Copy("native failure: the event was rejected");
  return 2;
}

int not_json(const char* event, size_t event_size, const ember_context* context, char** result,
             size_t* result_size) {
  (void)event;
  (void)event_size;
  (void)context;
  *result = Copy("this is {not JSON");
  if (*result == NULL) return 1;
  *result_size = strlen(*result);
  return 0;
}
