/* An interval timer and POSIX timers (signal, none, thread-id notification). Values are long
 * enough never to fire during the test. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "zdtm.h"

int main(void) {
  signal(SIGALRM, SIG_IGN);
  struct itimerval it = {.it_interval = {500, 0}, .it_value = {1000, 0}};
  setitimer(ITIMER_REAL, &it, NULL);

  timer_t t1, t2, t3;
  struct sigevent ev1 = {0};
  ev1.sigev_notify = SIGEV_SIGNAL;
  ev1.sigev_signo = SIGUSR2;
  ev1.sigev_value.sival_ptr = (void*)0x1234;
  timer_create(CLOCK_MONOTONIC, &ev1, &t1);
  struct itimerspec its1 = {.it_interval = {7, 0}, .it_value = {2000, 0}};
  timer_settime(t1, 0, &its1, NULL);

  struct sigevent ev2 = {0};
  ev2.sigev_notify = SIGEV_NONE;
  timer_create(CLOCK_REALTIME, &ev2, &t2);
  struct itimerspec its2 = {.it_interval = {0, 0}, .it_value = {3000, 0}};
  timer_settime(t2, 0, &its2, NULL);

  struct sigevent ev3 = {0};
  ev3.sigev_notify = SIGEV_THREAD_ID;
  ev3.sigev_signo = SIGUSR1;
  ev3._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  timer_create(CLOCK_BOOTTIME, &ev3, &t3); /* created, never armed */

  zdtm_ready("t1=%ld t2=%ld t3=%ld", (long)(intptr_t)t1, (long)(intptr_t)t2, (long)(intptr_t)t3);
  zdtm_wait();
  struct itimerspec now;
  timer_gettime(t1, &now);
  struct itimerval real;
  getitimer(ITIMER_REAL, &real);
  int ok = now.it_value.tv_sec > 1900 && now.it_interval.tv_sec == 7 &&
           real.it_value.tv_sec > 900 && real.it_interval.tv_sec == 500;
  return zdtm_result(ok, "timers changed");
}
