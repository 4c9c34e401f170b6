/* One fd of a kind ember refuses (argv[1]: eventfd, epoll, pipe, memfd, unix): the checkpoint
 * must name it. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = -1;
  if (strcmp(argv[1], "eventfd") == 0) fd = eventfd(0, 0);
  if (strcmp(argv[1], "epoll") == 0) fd = epoll_create1(0);
  if (strcmp(argv[1], "memfd") == 0) fd = memfd_create("zdtm", 0);
  if (strcmp(argv[1], "pipe") == 0 || strcmp(argv[1], "unix") == 0) {
    int pair[2];
    if (strcmp(argv[1], "pipe") == 0 ? pipe(pair) : socketpair(AF_UNIX, SOCK_DGRAM, 0, pair)) {
      return 3;
    }
    fd = pair[0];
  }
  if (fd < 0) return 3;
  zdtm_ready("fd=%d", fd);
  zdtm_wait();
  return zdtm_result(1, "");
}
