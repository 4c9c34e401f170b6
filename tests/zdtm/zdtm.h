/* Shared by the zdtm-style programs of the checkpoint tests (CRIU's zdtm is the model): each
 * sets up one kind of state, prints "ready key=value ..." on stdout, blocks in read() on fd 0
 * (the control socket the test names as the control channel) so the checkpoint catches it in an
 * interrupted syscall, then on one byte checks its state survived and prints "ok" or
 * "fail <why>" and exits. */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void zdtm_ready(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("ready ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

/* Blocks until the test sends a byte on fd 0 (returns 0) or closes it (exits). */
static inline void zdtm_wait(void) {
  char byte;
  ssize_t n;
  do {
    n = read(0, &byte, 1);
  } while (n < 0);
  if (n == 0) exit(2);
}

static inline int zdtm_result(int ok, const char* why) {
  if (ok) {
    printf("ok\n");
  } else {
    printf("fail %s\n", why);
  }
  fflush(stdout);
  return ok ? 0 : 1;
}
