/* Anonymous memory with data, thrown away with MADV_DONTNEED after the restore: it must read
 * back as zeros, as anonymous memory does. Memory restored as a private mapping of the image
 * (overlay memory) shows the image's bytes again unless the memory shim converts it first.
 *
 * The same for pages of the program's own data segment (a private file mapping) that it wrote
 * before the checkpoint: DONTNEED must bring back the file's bytes (the initializer), not zeros
 * and not the written bytes; MADV_FREE there fails with EINVAL, as on any file mapping. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtm.h"

#define PAGES 64
#define DATA_PAGES 4

/* Initialized, so in .data (file-backed), page aligned and whole pages. */
static unsigned char data_pages[DATA_PAGES * 4096] __attribute__((aligned(4096))) = {0x5a, 0x5b};

static int data_is_initial(size_t from, size_t to) {
  int ok = 1;
  for (size_t i = from; i < to; ++i) ok &= data_pages[i] == (i == 0 ? 0x5a : i == 1 ? 0x5b : 0);
  return ok;
}

int main(void) {
  size_t len = (size_t)PAGES * 4096;
  unsigned char* area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return 3;
  memset(area, 0xab, len);
  memset(data_pages, 0xcd, sizeof data_pages);
  zdtm_ready("area=%p len=%zu data=%p", (void*)area, len, (void*)data_pages);
  zdtm_wait();
  int ok = area[0] == 0xab && area[len - 1] == 0xab;
  if (madvise(area + 4096, len - 2 * 4096, MADV_DONTNEED) != 0) return zdtm_result(0, "madvise");
  for (size_t i = 4096; i < len - 4096; ++i) ok &= area[i] == 0;
  ok &= area[0] == 0xab && area[len - 1] == 0xab; /* outside the range: kept */
  area[8192] = 1;                                 /* and the zeroed memory is writable */
  ok &= area[8192] == 1;
  if (!ok) return zdtm_result(0, "MADV_DONTNEED did not give zero pages");

  /* The data segment: pages 0 and 2 dropped, 1 and 3 keep what was written. */
  ok = data_pages[0] == 0xcd && data_pages[sizeof data_pages - 1] == 0xcd;
  if (!ok) return zdtm_result(0, "the data segment lost what was written before the checkpoint");
  if (madvise(data_pages, 4096, MADV_DONTNEED) != 0 ||
      madvise(data_pages + 2 * 4096, 4096, MADV_DONTNEED) != 0) {
    return zdtm_result(0, "madvise of the data segment");
  }
  ok &= data_is_initial(0, 4096) && data_is_initial(2 * 4096, 3 * 4096);
  ok &= data_pages[4096] == 0xcd && data_pages[3 * 4096] == 0xcd;
  data_pages[0] = 7; /* writable again */
  ok &= data_pages[0] == 7;
  if (!ok) return zdtm_result(0, "MADV_DONTNEED on the data segment did not bring the file back");
  errno = 0;
  ok &= madvise(data_pages + 4096, 4096, MADV_FREE) != 0 && errno == EINVAL;
  ok &= data_pages[4096] == 0xcd;
  return zdtm_result(ok, "MADV_FREE on the data segment did not fail with EINVAL");
}
