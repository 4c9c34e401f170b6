#include "agent/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/unique_fd.h"

namespace ember::agent {
namespace {

std::string Frame1(FrameType type, uint64_t id, std::string_view payload) {
  std::string out;
  EncodeFrame(type, id, payload, &out);
  return out;
}

// Overwrites `size` little-endian bytes at `offset` of an encoded frame.
void Patch(std::string* bytes, size_t offset, uint64_t value, size_t size) {
  for (size_t i = 0; i < size; ++i) (*bytes)[offset + i] = static_cast<char>(value >> (8 * i));
}

std::string HeaderError(const std::string& bytes) {
  auto header = DecodeHeader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_FALSE(header);
  return header ? "" : header.error().message();
}

TEST(Protocol, HeaderLayout) {
  std::string bytes = Frame1(FrameType::kInvoke, 0x0102030405060708, "abc");
  ASSERT_EQ(bytes.size(), kFrameHeaderSize + 3);
  EXPECT_EQ(bytes.substr(0, 4), "EMBR");
  EXPECT_EQ(bytes[4], 1);  // version, little-endian
  EXPECT_EQ(bytes[6], 2);  // type
  EXPECT_EQ(bytes[8], 0x08);
  EXPECT_EQ(bytes[15], 0x01);
  EXPECT_EQ(bytes[16], 3);  // length
  auto header = DecodeHeader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_TRUE(header) << header.error().message();
  EXPECT_EQ(header->type, FrameType::kInvoke);
  EXPECT_EQ(header->request_id, 0x0102030405060708u);
  EXPECT_EQ(header->length, 3u);
}

TEST(Protocol, RejectsMalformedHeaders) {
  std::string good = Frame1(FrameType::kResult, 7, "");

  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_NE(HeaderError(bad_magic).find("bad magic"), std::string::npos);

  std::string bad_version = good;
  Patch(&bad_version, 4, 2, 2);
  EXPECT_NE(HeaderError(bad_version).find("protocol version 2"), std::string::npos);

  std::string bad_type = good;
  Patch(&bad_type, 6, 99, 2);
  EXPECT_NE(HeaderError(bad_type).find("unknown frame type 99"), std::string::npos);

  std::string bad_reserved = good;
  Patch(&bad_reserved, 20, 1, 4);
  EXPECT_NE(HeaderError(bad_reserved).find("reserved"), std::string::npos);

  std::string too_long = good;
  Patch(&too_long, 16, kMaxPayload + 1, 4);
  EXPECT_NE(HeaderError(too_long).find("exceeds the limit"), std::string::npos);
  std::string at_limit = good;
  Patch(&at_limit, 16, kMaxPayload, 4);
  EXPECT_TRUE(DecodeHeader(reinterpret_cast<const uint8_t*>(at_limit.data()), at_limit.size()));

  EXPECT_NE(HeaderError(good.substr(0, 23)).find("23 bytes"), std::string::npos);
}

TEST(FrameReader, FeedsByteByByte) {
  std::string bytes = Frame1(FrameType::kInit, 3, R"({"a":1})");
  FrameReader reader;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    reader.Feed(&bytes[i], 1);
    auto next = reader.Next();
    ASSERT_TRUE(next) << next.error().message();
    EXPECT_FALSE(next->has_value()) << "frame complete after " << i + 1 << " bytes";
  }
  reader.Feed(&bytes.back(), 1);
  auto next = reader.Next();
  ASSERT_TRUE(next && next->has_value());
  EXPECT_EQ((*next)->type, FrameType::kInit);
  EXPECT_EQ((*next)->request_id, 3u);
  EXPECT_EQ((*next)->payload, R"({"a":1})");
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, SeveralFramesInOneFeed) {
  std::string bytes = Frame1(FrameType::kResult, 1, "1") + Frame1(FrameType::kError, 2, "") +
                      Frame1(FrameType::kResult, 3, "three");
  bytes += bytes.substr(0, 10);  // start of a fourth frame
  FrameReader reader;
  reader.Feed(bytes.data(), bytes.size());
  std::vector<std::pair<uint64_t, std::string>> got;
  while (true) {
    auto next = reader.Next();
    ASSERT_TRUE(next);
    if (!next->has_value()) break;
    got.emplace_back((*next)->request_id, (*next)->payload);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], std::make_pair(uint64_t{1}, std::string("1")));
  EXPECT_EQ(got[1], std::make_pair(uint64_t{2}, std::string("")));
  EXPECT_EQ(got[2], std::make_pair(uint64_t{3}, std::string("three")));
  EXPECT_EQ(reader.buffered(), 10u);
}

TEST(FrameReader, LargeFramesComeOutWholeAlsoBesideOthers) {
  const std::string big(300u << 10, 'b');
  // Alone in the buffer (handed over without a copy), then followed by a small frame, then
  // preceded by one: the payloads are the same every way.
  for (int layout = 0; layout < 3; ++layout) {
    std::string bytes = Frame1(FrameType::kResult, 7, big);
    if (layout == 1) bytes += Frame1(FrameType::kResult, 8, "small");
    if (layout == 2) bytes = Frame1(FrameType::kResult, 6, "first") + bytes;
    FrameReader reader;
    reader.Feed(bytes.data(), bytes.size());
    std::vector<std::string> payloads;
    for (;;) {
      auto next = reader.Next();
      ASSERT_TRUE(next);
      if (!next->has_value()) break;
      payloads.push_back((*next)->payload);
    }
    ASSERT_EQ(payloads.size(), layout == 0 ? 1u : 2u) << layout;
    EXPECT_EQ(payloads[layout == 2 ? 1 : 0], big) << layout;
    EXPECT_EQ(reader.buffered(), 0u);
    // The reader goes on working after handing its buffer over.
    std::string again = Frame1(FrameType::kResult, 9, "again");
    reader.Feed(again.data(), again.size());
    auto next = reader.Next();
    ASSERT_TRUE(next && next->has_value());
    EXPECT_EQ((*next)->payload, "again");
  }
}

TEST(FrameReader, StaysFailed) {
  std::string bad = Frame1(FrameType::kResult, 1, "x");
  bad[1] = '?';
  FrameReader reader;
  reader.Feed(bad.data(), bad.size());
  auto first = reader.Next();
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code(), ErrorCode::kCorrupt);
  std::string good = Frame1(FrameType::kResult, 2, "y");
  reader.Feed(good.data(), good.size());
  auto second = reader.Next();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message(), first.error().message());
  EXPECT_EQ(reader.buffered(), 0u);  // nothing is kept after the failure
}

TEST(FrameReader, RejectsOversizedLengthBeforeThePayloadArrives) {
  std::string bytes = Frame1(FrameType::kInvoke, 1, "");
  Patch(&bytes, 16, 0xffffffff, 4);
  FrameReader reader;
  reader.Feed(bytes.data(), bytes.size());
  auto next = reader.Next();
  ASSERT_FALSE(next);
  EXPECT_NE(next.error().message().find("4294967295"), std::string::npos);
}

TEST(Protocol, InitRoundTrip) {
  InitRequest init{"hello", "python3.11",       "app.handler", "/function", 128u << 20,
                   4,       R"({"warm":true})", 3000};
  auto decoded = DecodeInit(EncodeInit(init));
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->function, "hello");
  EXPECT_EQ(decoded->runtime, "python3.11");
  EXPECT_EQ(decoded->handler, "app.handler");
  EXPECT_EQ(decoded->code_dir, "/function");
  EXPECT_EQ(decoded->memory_limit_bytes, 128u << 20);
  EXPECT_EQ(decoded->concurrency, 4u);
  EXPECT_EQ(decoded->warmup_event, R"({"warm":true})");
  EXPECT_EQ(decoded->timeout_ms, 3000u);
}

TEST(Protocol, InitRejectsBadFields) {
  EXPECT_FALSE(DecodeInit("not json"));
  EXPECT_FALSE(DecodeInit("[1,2]"));
  EXPECT_FALSE(DecodeInit(R"({"runtime":"native","handler":"x","code_dir":"/f"})"));
  auto wrong_type =
      DecodeInit(R"({"function":1,"runtime":"native","handler":"x","code_dir":"/f"})");
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.error().message().find("\"function\" must be a string"), std::string::npos);
  EXPECT_FALSE(DecodeInit(
      R"({"function":"f","runtime":"native","handler":"x","code_dir":"/f","concurrency":0})"));
  EXPECT_FALSE(DecodeInit(
      R"({"function":"f","runtime":"native","handler":"x","code_dir":"/f","concurrency":-2})"));
  EXPECT_FALSE(DecodeInit(
      R"({"function":"f","runtime":"native","handler":"x","code_dir":"/f","concurrency":1.5})"));
  auto minimal = DecodeInit(R"({"function":"f","runtime":"native","handler":"x","code_dir":"/f"})");
  ASSERT_TRUE(minimal) << minimal.error().message();
  EXPECT_EQ(minimal->concurrency, 1u);
  EXPECT_EQ(minimal->warmup_event, "");
}

TEST(Protocol, InvokeRoundTrip) {
  InvokeRequest invoke{"req-42", 2500, "{\"x\": [1, 2, \"\xc3\xa9\"]}\n"};
  std::string payload = EncodeInvoke(invoke);
  auto decoded = DecodeInvoke(payload);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->request_id, "req-42");
  EXPECT_EQ(decoded->timeout_ms, 2500u);
  EXPECT_EQ(decoded->event, invoke.event);  // verbatim, not re-serialized
}

TEST(Protocol, InvokeRejectsBadMetadata) {
  EXPECT_FALSE(DecodeInvoke(""));
  EXPECT_FALSE(DecodeInvoke(std::string("\x05\x00\x00", 3)));
  auto too_long = DecodeInvoke(std::string("\xff\x00\x00\x00{}", 6));
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message().find("exceeds"), std::string::npos);
  EXPECT_FALSE(DecodeInvoke(std::string("\x03\x00\x00\x00{x}", 7)));
  EXPECT_FALSE(DecodeInvoke(std::string("\x02\x00\x00\x00{}", 6)));  // no request_id
  std::string meta = R"({"request_id":"r","timeout_ms":"soon"})";
  std::string payload =
      std::string(1, static_cast<char>(meta.size())) + std::string(3, '\0') + meta + "{}";
  EXPECT_FALSE(DecodeInvoke(payload));
}

TEST(Protocol, ErrorRoundTrip) {
  ErrorInfo error{"ZeroDivisionError", "division by zero", "Traceback ...\n"};
  auto decoded = DecodeError(EncodeError(error));
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->type, error.type);
  EXPECT_EQ(decoded->message, error.message);
  EXPECT_EQ(decoded->traceback, error.traceback);
  EXPECT_FALSE(DecodeError(R"({"message":"no type"})"));
  // Invalid UTF-8 from a native handler must not make encoding throw.
  auto replaced = DecodeError(EncodeError({"HandlerError", "bad \xff byte", ""}));
  ASSERT_TRUE(replaced);
  EXPECT_EQ(replaced->message, "bad \xef\xbf\xbd byte");
}

TEST(Protocol, WriteAndReadOverASocket) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  std::string big(1 << 20, 'z');  // larger than the socket buffer: the writer must loop
  std::thread writer([&] {
    EXPECT_TRUE(WriteFrame(a.get(), FrameType::kResult, 9, big));
    EXPECT_TRUE(WriteFrame(a.get(), FrameType::kReady, 10, "{}"));
    a.reset();
  });
  auto first = ReadFrame(b.get());
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->payload, big);
  auto second = ReadFrame(b.get());
  ASSERT_TRUE(second);
  EXPECT_EQ(second->type, FrameType::kReady);
  writer.join();
  auto eof = ReadFrame(b.get());
  ASSERT_FALSE(eof);
  EXPECT_EQ(eof.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(WriteFrame(b.get(), FrameType::kResult, 1, std::string(kMaxPayload + 1, 'x')));
}

TEST(Protocol, ReadFrameReportsTruncation) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  std::string bytes = Frame1(FrameType::kInvoke, 1, "0123456789");
  ASSERT_EQ(::write(a.get(), bytes.data(), bytes.size() - 4), ssize_t(bytes.size() - 4));
  a.reset();
  auto frame = ReadFrame(b.get());
  ASSERT_FALSE(frame);
  EXPECT_NE(frame.error().message().find("6 of 10 payload bytes"), std::string::npos);

  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  a.reset(fds[0]);
  b.reset(fds[1]);
  ASSERT_EQ(::write(a.get(), bytes.data(), 5), 5);
  a.reset();
  frame = ReadFrame(b.get());
  ASSERT_FALSE(frame);
  EXPECT_NE(frame.error().message().find("5 of 24 bytes"), std::string::npos);
}

}  // namespace
}  // namespace ember::agent
