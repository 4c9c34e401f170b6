/* Shared anonymous memory: ember refuses it (it may be shared with another process and has no
 * file to restore it from). */
#include <string.h>
#include <sys/mman.h>

#include "zdtm.h"

int main(void) {
  char* shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(shared, 7, 8192);
  zdtm_ready("shared=%p", (void*)shared);
  zdtm_wait();
  return zdtm_result(shared[100] == 7, "shared memory changed");
}
