// Passing fds across unix sockets, and telling a peer that closed without reading what we sent
// (a restore shell killed in the instant of its handoff) from one that read it and then closed.
#include "sys/fd_passing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace ember::sys {
namespace {

struct Pair {
  UniqueFd ours, theirs;
};

Pair SeqpacketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(FdPassing, AMessageWithFdsArrivesWithThemAndTheirNumbersAreNew) {
  Pair pair = SeqpacketPair();
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  const char hello[] = "hello";
  const int sent_fds[] = {write_end.get()};
  ASSERT_EQ(SendWithFds(pair.ours.get(), hello, sizeof hello, sent_fds, 1),
            static_cast<ssize_t>(sizeof hello));
  char got[16] = {};
  int fds[kMaxPassedFds];
  size_t count = 0;
  bool truncated = false;
  ASSERT_EQ(
      ReceiveWithFds(pair.theirs.get(), got, sizeof got, fds, kMaxPassedFds, &count, &truncated),
      static_cast<ssize_t>(sizeof hello));
  EXPECT_STREQ(got, "hello");
  ASSERT_EQ(count, 1u);
  EXPECT_FALSE(truncated);
  UniqueFd received(fds[0]);
  EXPECT_NE(received.get(), write_end.get());
  ASSERT_EQ(::write(received.get(), "x", 1), 1);  // the same pipe
  char x = 0;
  ASSERT_EQ(::read(read_end.get(), &x, 1), 1);
  EXPECT_EQ(x, 'x');
}

TEST(FdPassing, APeerThatClosedWithOurMessageUnreadIsTold) {
  Pair pair = SeqpacketPair();
  ASSERT_EQ(SendWithFds(pair.ours.get(), "go", 2, nullptr, 0), 2);
  pair.theirs.reset();
  EXPECT_TRUE(PeerClosedWithDataUnread(pair.ours.get()));
}

TEST(FdPassing, APeerThatReadOurMessageAndClosedIsNotTold) {
  Pair pair = SeqpacketPair();
  ASSERT_EQ(SendWithFds(pair.ours.get(), "go", 2, nullptr, 0), 2);
  char got[2];
  ASSERT_EQ(::read(pair.theirs.get(), got, sizeof got), 2);
  pair.theirs.reset();
  EXPECT_FALSE(PeerClosedWithDataUnread(pair.ours.get()));
}

}  // namespace
}  // namespace ember::sys
