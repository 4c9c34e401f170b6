/* A thread that keeps creating and joining short-lived threads while the checkpointer seizes:
 * the task list changes under it. */
#include <pthread.h>

#include "zdtm.h"

static volatile int stop = 0;
static volatile long spawned = 0;

static void* Short(void* arg) { return arg; }

static void* Spawner(void* arg) {
  (void)arg;
  while (!stop) {
    pthread_t t;
    if (pthread_create(&t, NULL, Short, NULL) == 0) pthread_join(t, NULL);
    __atomic_add_fetch(&spawned, 1, __ATOMIC_SEQ_CST);
  }
  return NULL;
}

int main(void) {
  pthread_t spawner;
  pthread_create(&spawner, NULL, Spawner, NULL);
  while (__atomic_load_n(&spawned, __ATOMIC_SEQ_CST) < 10) usleep(1000);
  zdtm_ready("spawning=1");
  zdtm_wait();
  long before = __atomic_load_n(&spawned, __ATOMIC_SEQ_CST);
  usleep(20000);
  int ok = __atomic_load_n(&spawned, __ATOMIC_SEQ_CST) > before;
  stop = 1;
  pthread_join(spawner, NULL);
  return zdtm_result(ok, "the spawner thread stopped spawning");
}
