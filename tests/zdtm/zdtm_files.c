/* Regular files at several offsets and flags, a directory, a character device, and a file
 * mapped both privately (one page written: copied on write) and shared. argv[1]: a scratch
 * directory. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  char path[4096];
  snprintf(path, sizeof path, "%s/data", argv[1]);
  int rw = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  char block[4096];
  for (int i = 0; i < 4; ++i) {
    memset(block, 'a' + i, sizeof block);
    if (write(rw, block, sizeof block) != (ssize_t)sizeof block) return 3;
  }
  lseek(rw, 1234, SEEK_SET);
  int ro = open(path, O_RDONLY | O_CLOEXEC);
  lseek(ro, 5000, SEEK_SET);
  int append = open(path, O_WRONLY | O_APPEND);
  int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
  int null = open("/dev/null", O_WRONLY);
  char* priv = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, rw, 0);
  char* shared = mmap(NULL, 4 * 4096, PROT_READ, MAP_SHARED, ro, 0);
  volatile char sink = priv[0] + priv[3 * 4096] + shared[4096]; /* read faults: file pages */
  (void)sink;
  priv[2 * 4096 + 10] = 'Z'; /* one page copied on write */
  zdtm_ready("path=%s rw=%d ro=%d append=%d dir=%d null=%d priv=%p shared=%p", path, rw, ro, append,
             dir, null, (void*)priv, (void*)shared);
  zdtm_wait();
  int ok = lseek(rw, 0, SEEK_CUR) == 1234 && lseek(ro, 0, SEEK_CUR) == 5000 &&
           priv[2 * 4096 + 10] == 'Z' && priv[2 * 4096] == 'c' && shared[4096] == 'b';
  return zdtm_result(ok, "file offsets or mappings changed");
}
