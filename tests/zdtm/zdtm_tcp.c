/* A listening TCP socket: the checkpoint must refuse it by name. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "zdtm.h"

int main(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(s, 1) != 0) return 3;
  socklen_t len = sizeof addr;
  getsockname(s, (struct sockaddr*)&addr, &len);
  zdtm_ready("fd=%d port=%d", s, ntohs(addr.sin_port));
  zdtm_wait();
  return zdtm_result(1, "");
}
