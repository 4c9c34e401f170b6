/* Several threads, each blocked in a futex wait, each with its own TLS value. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "zdtm.h"

#define THREADS 4

static __thread long tls_value = 7;
static int go = 0;
static volatile int started = 0;
static pid_t tids[THREADS];
static uintptr_t tls_addrs[THREADS];
static int thread_ok[THREADS];

static void* Worker(void* arg) {
  long index = (long)arg;
  tls_value = 1000 + index;
  tls_addrs[index] = (uintptr_t)&tls_value;
  tids[index] = (pid_t)syscall(SYS_gettid);
  __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&go, __ATOMIC_SEQ_CST) == 0) {
    syscall(SYS_futex, &go, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  }
  thread_ok[index] = tls_value == 1000 + index && tids[index] == (pid_t)syscall(SYS_gettid);
  return NULL;
}

int main(void) {
  pthread_t threads[THREADS];
  tls_value = 42;
  for (long i = 0; i < THREADS; ++i) pthread_create(&threads[i], NULL, Worker, (void*)i);
  while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < THREADS) usleep(1000);
  usleep(20000); /* let every worker enter its futex wait */
  zdtm_ready("threads=%d tids=%d,%d,%d,%d tls=%p,%p,%p,%p main_tls=%p", THREADS + 1, tids[0],
             tids[1], tids[2], tids[3], (void*)tls_addrs[0], (void*)tls_addrs[1],
             (void*)tls_addrs[2], (void*)tls_addrs[3], (void*)&tls_value);
  zdtm_wait();
  __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, &go, FUTEX_WAKE_PRIVATE, THREADS, NULL, NULL, 0);
  int ok = tls_value == 42;
  for (int i = 0; i < THREADS; ++i) {
    pthread_join(threads[i], NULL);
    ok &= thread_ok[i];
  }
  return zdtm_result(ok, "a thread lost its tls value or tid");
}
