/* Heap, a large anonymous mapping with a pattern on every other page, a PROT_NONE area that
 * holds data, and zero pages that must not be stored. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtm.h"

#define MMAP_PAGES 4096 /* 16 MiB */

static unsigned char Pattern(size_t page, size_t i) { return (unsigned char)(page * 31 + i); }

int main(void) {
  size_t heap_len = 1 << 20;
  unsigned char* heap = malloc(heap_len);
  for (size_t i = 0; i < heap_len; ++i) heap[i] = (unsigned char)(i % 251);
  size_t mmap_len = (size_t)MMAP_PAGES * 4096;
  unsigned char* big =
      mmap(NULL, mmap_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (size_t page = 0; page < MMAP_PAGES; page += 2) {
    for (size_t i = 0; i < 4096; ++i) big[page * 4096 + i] = Pattern(page, i);
  }
  big[1 * 4096] = 0; /* odd pages stay untouched or zero: never stored */
  unsigned char* hidden =
      mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(hidden, 0x5a, 4096);
  mprotect(hidden, 4096, PROT_NONE);
  zdtm_ready("heap=%p heap_len=%zu mmap=%p mmap_len=%zu hidden=%p", (void*)heap, heap_len,
             (void*)big, mmap_len, (void*)hidden);
  zdtm_wait();
  int ok = 1;
  for (size_t i = 0; i < heap_len; ++i) ok &= heap[i] == (unsigned char)(i % 251);
  for (size_t page = 0; page < MMAP_PAGES; page += 2) {
    for (size_t i = 0; i < 4096; ++i) ok &= big[page * 4096 + i] == Pattern(page, i);
  }
  mprotect(hidden, 4096, PROT_READ);
  ok &= hidden[100] == 0x5a;
  return zdtm_result(ok, "memory pattern changed");
}
