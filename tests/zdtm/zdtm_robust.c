/* A robust futex list head and a clear_child_tid address set by the program itself. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sys/syscall.h>

#include "zdtm.h"

static struct robust_list_head head;
static int tid_word;

int main(void) {
  head.list.next = &head.list;
  head.futex_offset = 0;
  head.list_op_pending = NULL;
  syscall(SYS_set_robust_list, &head, sizeof head);
  syscall(SYS_set_tid_address, &tid_word);
  zdtm_ready("robust=%p robust_len=%zu clear_tid=%p", (void*)&head, sizeof head, (void*)&tid_word);
  zdtm_wait();
  struct robust_list_head* now = NULL;
  size_t len = 0;
  syscall(SYS_get_robust_list, 0, &now, &len);
  return zdtm_result(now == &head && len == sizeof head, "robust list changed");
}
