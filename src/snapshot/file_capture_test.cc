#include "snapshot/file_capture.h"

#include <gtest/gtest.h>

namespace ember::snapshot {
namespace {

TEST(DescribeAnonInodeTest, NamesTheKernelObject) {
  EXPECT_EQ(DescribeAnonInode("anon_inode:[eventfd]"), "an eventfd");
  EXPECT_EQ(DescribeAnonInode("anon_inode:[eventpoll]"), "an epoll instance");
  EXPECT_EQ(DescribeAnonInode("anon_inode:[io_uring]"), "an io_uring instance");
  EXPECT_EQ(DescribeAnonInode("anon_inode:inotify"), "an inotify instance");
  EXPECT_EQ(DescribeAnonInode("anon_inode:[timerfd]"), "a timerfd");
  EXPECT_EQ(DescribeAnonInode("anon_inode:bpf-map"), "a kernel object of kind 'bpf-map'");
}

}  // namespace
}  // namespace ember::snapshot
