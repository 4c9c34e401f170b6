/* A native ember function: {"name": "ember"} -> {"greeting": "Hello, ember!", "bytes": 16}
 * (`bytes` is the size of the event it received).
 * No JSON library: it looks for the "name" member's string value, which is enough for a greeting
 * (a real function would link a parser such as cJSON into the library). */
#include <ember/function.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set once by ember_function_init and only read afterwards, so handle() stays thread-safe. */
static char g_salutation[32] = "Hello";

/* Optional: runs once per instance before the first invocation (and before a snapshot is taken,
 * so what it prepares is already there in every instance booted from one). Non-zero fails init. */
int ember_function_init(void) {
  const char* salutation = getenv("SALUTATION"); /* from [env] in ember.toml */
  if (salutation != NULL && salutation[0] != '\0') {
    if (strlen(salutation) >= sizeof g_salutation || strpbrk(salutation, "\"\\") != NULL) return 1;
    strcpy(g_salutation, salutation);
  }
  return 0;
}

/* Copies the string value of "name" (without escapes) into out; returns 0 if there is none. */
static size_t find_name(const char* event, size_t event_size, char* out, size_t out_size) {
  const char* key = strstr(event, "\"name\"");
  if (key == NULL) return 0;
  const char* p = key + 6;
  const char* end = event + event_size;
  while (p < end && (*p == ' ' || *p == '\t' || *p == ':')) p++;
  if (p >= end || *p != '"') return 0;
  p++;
  size_t n = 0;
  while (p < end && *p != '"' && n + 1 < out_size) {
    if (*p == '\\' || (unsigned char)*p < 0x20) return 0; /* keep the output valid JSON */
    out[n++] = *p++;
  }
  out[n] = '\0';
  return n;
}

int handle(const char* event, size_t event_size, const ember_context* context, char** result,
           size_t* result_size) {
  char name[128];
  if (find_name(event, event_size, name, sizeof name) == 0) strcpy(name, "world");
  /* stdout and stderr go to the function's logs (`ember logs native-c`). */
  fprintf(stderr, "greeting %s (request %s)\n", name, context->request_id);

  size_t size = strlen(g_salutation) + strlen(name) + 64;
  char* json = malloc(size);
  if (json == NULL) {
    *result = strdup("out of memory");
    return 1;
  }
  int n = snprintf(json, size, "{\"greeting\":\"%s, %s!\",\"bytes\":%zu}", g_salutation, name,
                   event_size);
  *result = json;
  *result_size = (size_t)n;
  return 0;
}
