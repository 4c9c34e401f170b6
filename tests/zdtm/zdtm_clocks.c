/* CLOCK_MONOTONIC and CLOCK_BOOTTIME must never go back across a checkpoint and restore: read
 * just before the checkpoint (they are in the ready line), they must read at least as much after
 * the restore, whatever the restoring host's uptime (a restore after a reboot, or of a process
 * that ran in a time namespace with offsets). With --print the verdict carries the values read
 * after the restore: "ok monotonic=<ns> boottime=<ns>". */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "zdtm.h"

static uint64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char** argv) {
  int print = argc > 1 && strcmp(argv[1], "--print") == 0;
  uint64_t monotonic = now_ns(CLOCK_MONOTONIC);
  uint64_t boottime = now_ns(CLOCK_BOOTTIME);
  zdtm_ready("monotonic=%llu boottime=%llu", (unsigned long long)monotonic,
             (unsigned long long)boottime);
  zdtm_wait();
  uint64_t monotonic_after = now_ns(CLOCK_MONOTONIC);
  uint64_t boottime_after = now_ns(CLOCK_BOOTTIME);
  if (monotonic_after < monotonic) return zdtm_result(0, "CLOCK_MONOTONIC went back");
  if (boottime_after < boottime) return zdtm_result(0, "CLOCK_BOOTTIME went back");
  if (!print) return zdtm_result(1, "");
  printf("ok monotonic=%llu boottime=%llu\n", (unsigned long long)monotonic_after,
         (unsigned long long)boottime_after);
  fflush(stdout);
  return 0;
}
