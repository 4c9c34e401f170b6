#include "agent/protocol_template.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ember::agent {
namespace {

TEST(TemplateProtocolTest, TemplateSpecRoundTrips) {
  TemplateSpec spec;
  spec.tmpfs_size = 64 << 20;
  spec.tmp_size = 32 << 20;
  spec.uid = 1000;
  spec.gid = 1001;
  spec.workdir = "/function";
  spec.binds = {"/.ember", "/function"};
  spec.rlimits = {{7, 1024, 4096}};
  spec.cap_last_cap = 40;
  spec.seccomp = std::string("\x06\x00\x00\x00\x00\x00\xff\x7f", 8);
  auto decoded = DecodeTemplateSpec(EncodeTemplateSpec(spec));
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(decoded->uid, 1000u);
  EXPECT_EQ(decoded->gid, 1001u);
  EXPECT_EQ(decoded->binds, spec.binds);
  ASSERT_EQ(decoded->rlimits.size(), 1u);
  EXPECT_EQ(decoded->rlimits[0].hard, 4096u);
  EXPECT_EQ(decoded->seccomp, spec.seccomp);
}

TEST(TemplateProtocolTest, BadTemplateSpecsAreRefusedByName) {
  EXPECT_FALSE(DecodeTemplateSpec("[]"));
  auto no_seccomp = DecodeTemplateSpec(
      R"({"tmpfs_size":1,"tmp_size":1,"workdir":"/","binds":[],"rlimits":[],"seccomp":""})");
  ASSERT_FALSE(no_seccomp);
  EXPECT_NE(no_seccomp.error().message().find("seccomp"), std::string::npos);
  auto relative =
      DecodeTemplateSpec(R"({"tmpfs_size":1,"tmp_size":1,"workdir":"/","binds":["x"],"rlimits":[],)"
                         R"("seccomp":"0600000000000000"})");
  ASSERT_FALSE(relative);
  EXPECT_NE(relative.error().message().find("absolute"), std::string::npos);
}

TEST(TemplateProtocolTest, SpawnRequestLimitsItsFds) {
  auto ok = DecodeSpawnRequest(EncodeSpawnRequest({"i-1", true, 3}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->instance_id, "i-1");
  EXPECT_TRUE(ok->netns);
  EXPECT_EQ(ok->cgroup_fds, 3u);
  EXPECT_FALSE(DecodeSpawnRequest(EncodeSpawnRequest({"i-1", true, 6})));  // 2+1+6 > 8
  EXPECT_FALSE(DecodeSpawnRequest(EncodeSpawnRequest({"", false, 0})));
  EXPECT_FALSE(DecodeSpawnRequest(EncodeSpawnRequest({std::string(65, 'x'), false, 0})));
}

TEST(TemplateProtocolTest, RepliesAndExitsAreChecked) {
  auto reply = DecodeSpawnReply(EncodeSpawnReply({"i-2", 42}));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->pid, 42);
  EXPECT_FALSE(DecodeSpawnReply(R"({"instance_id":"i","pid":0})"));
  auto exit = DecodeChildExit(EncodeChildExit({"i-2", 42, true, 9}));
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->signaled);
  EXPECT_EQ(exit->code, 9);
  EXPECT_FALSE(DecodeChildExit(R"({"pid":3,"code":300})"));
}

TEST(TemplateProtocolTest, FdsTravelWithTheirFrame) {
  int socks[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks), 0);
  UniqueFd a(socks[0]), b(socks[1]);
  UniqueFd file(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(file);
  // A frame without fds first: the reader must not attach the next frame's fds to it.
  ASSERT_TRUE(WriteFrame(a.get(), FrameType::kChildExited, 0, "{}"));
  int fds[2] = {file.get(), file.get()};
  ASSERT_TRUE(WriteFrameWithFds(a.get(), FrameType::kSpawned, 5, std::string(100000, 'x'), fds));
  auto first = ReadFrameWithFds(b.get());
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->frame.type, FrameType::kChildExited);
  EXPECT_TRUE(first->fds.empty());
  auto second = ReadFrameWithFds(b.get());
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->frame.request_id, 5u);
  EXPECT_EQ(second->frame.payload.size(), 100000u);
  ASSERT_EQ(second->fds.size(), 2u);
  struct stat original {
  }, received{};
  ASSERT_EQ(::fstat(file.get(), &original), 0);
  ASSERT_EQ(::fstat(second->fds[0].get(), &received), 0);
  EXPECT_EQ(original.st_ino, received.st_ino);
  EXPECT_EQ(::fcntl(second->fds[1].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  a.reset();
  auto eof = ReadFrameWithFds(b.get());
  ASSERT_FALSE(eof);
  EXPECT_EQ(eof.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ember::agent
