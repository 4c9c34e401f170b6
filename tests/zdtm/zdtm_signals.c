/* Signal handlers (with flags and masks), an ignored signal, a blocked signal, an alternate
 * signal stack. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "zdtm.h"

static volatile int handled = 0;
static volatile uintptr_t handler_sp = 0;

static void OnUsr1(int sig, siginfo_t* info, void* ctx) {
  (void)sig;
  (void)info;
  (void)ctx;
  int local;
  handler_sp = (uintptr_t)&local;
  handled = 1;
}

int main(void) {
  size_t alt_size = 65536;
  void* alt = malloc(alt_size);
  stack_t ss = {.ss_sp = alt, .ss_size = alt_size, .ss_flags = 0};
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnUsr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR2);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGTERM, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, NULL);
  zdtm_ready("usr1_handler=%p altstack=%p altstack_size=%zu", (void*)OnUsr1, alt, alt_size);
  zdtm_wait();
  raise(SIGUSR1);
  int on_alt = handler_sp >= (uintptr_t)alt && handler_sp < (uintptr_t)alt + alt_size;
  return zdtm_result(handled && on_alt, "SIGUSR1 handler did not run on the alternate stack");
}
