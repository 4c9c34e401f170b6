/* A blocked signal left pending (argv[1] "thread": raised at the thread, else queued for the
 * whole process): the checkpoint must refuse naming it. */
#include <signal.h>
#include <string.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  int per_thread = argc > 1 && strcmp(argv[1], "thread") == 0;
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, per_thread ? SIGUSR1 : SIGUSR2);
  sigprocmask(SIG_BLOCK, &block, NULL);
  if (per_thread) {
    raise(SIGUSR1);
  } else {
    kill(getpid(), SIGUSR2);
  }
  zdtm_ready("signal=%d", per_thread ? SIGUSR1 : SIGUSR2);
  zdtm_wait();
  sigset_t pending;
  sigpending(&pending);
  return zdtm_result(sigismember(&pending, per_thread ? SIGUSR1 : SIGUSR2), "signal lost");
}
