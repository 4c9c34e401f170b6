/* Anonymous memory with data, thrown away with MADV_DONTNEED after the restore: it must read
 * back as zeros, as anonymous memory does. Memory restored as a private mapping of the image
 * (overlay memory) shows the image's bytes again unless the memory shim converts it first. */
#include <string.h>
#include <sys/mman.h>

#include "zdtm.h"

#define PAGES 64

int main(void) {
  size_t len = (size_t)PAGES * 4096;
  unsigned char* area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return 3;
  memset(area, 0xab, len);
  zdtm_ready("area=%p len=%zu", (void*)area, len);
  zdtm_wait();
  int ok = area[0] == 0xab && area[len - 1] == 0xab;
  if (madvise(area + 4096, len - 2 * 4096, MADV_DONTNEED) != 0) return zdtm_result(0, "madvise");
  for (size_t i = 4096; i < len - 4096; ++i) ok &= area[i] == 0;
  ok &= area[0] == 0xab && area[len - 1] == 0xab; /* outside the range: kept */
  area[8192] = 1;                                 /* and the zeroed memory is writable */
  ok &= area[8192] == 1;
  return zdtm_result(ok, "MADV_DONTNEED did not give zero pages");
}
