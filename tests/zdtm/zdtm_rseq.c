/* rseq as glibc registers it for the main thread. */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/rseq.h>

#include "zdtm.h"

int main(void) {
  uintptr_t area = (uintptr_t)__builtin_thread_pointer() + (uintptr_t)__rseq_offset;
  zdtm_ready("rseq=%p rseq_size=%u rseq_sig=%u", (void*)area, __rseq_size, (unsigned)RSEQ_SIG);
  zdtm_wait();
  struct rseq* rs = (struct rseq*)area;
  return zdtm_result(__rseq_size == 0 || rs->cpu_id != (uint32_t)-1, "rseq area not updated");
}
