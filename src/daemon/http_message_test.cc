#include "daemon/http_message.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ember::daemon {
namespace {

TEST(HttpMessageTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("/v1/functions/a%20b%2Fc").value(), "/v1/functions/a b/c");
  EXPECT_EQ(PercentDecode("%e2%82%AC").value(), "\xE2\x82\xAC");
  EXPECT_EQ(PercentDecode("a+b").value(), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true).value(), "a b");
  for (const char* bad : {"%", "%4", "%zz", "a%4g"}) {
    auto decoded = PercentDecode(bad);
    ASSERT_FALSE(decoded) << bad;
    EXPECT_EQ(decoded.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(HttpMessageTest, PercentEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(PercentEncode("hello-world_1.2~x"), "hello-world_1.2~x");
  EXPECT_EQ(PercentEncode("a b/c?d#e%f&g=h+"), "a%20b%2Fc%3Fd%23e%25f%26g%3Dh%2B");
  EXPECT_EQ(PercentEncode("\xE2\x82\xAC"), "%E2%82%AC");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(PercentDecode(PercentEncode(all)).value(), all);
}

TEST(HttpMessageTest, ParseQuery) {
  auto query = ParseQuery("instance=i-1&offset=10&&empty=&flag&x=a%3Db+c&offset=20");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->at("instance"), "i-1");
  EXPECT_EQ(query->at("offset"), "20");  // the last one wins
  EXPECT_EQ(query->at("empty"), "");
  EXPECT_EQ(query->at("flag"), "");
  EXPECT_EQ(query->at("x"), "a=b c");
  EXPECT_EQ(query->size(), 5u);
  EXPECT_FALSE(ParseQuery("a=%G0"));
}

TEST(HttpMessageTest, JsonErrorShape) {
  HttpResponse error = JsonError(404, "function_not_found", "no function named \"x\"");
  EXPECT_EQ(error.status, 404);
  EXPECT_EQ(error.content_type, "application/json");
  EXPECT_EQ(error.body,
            R"({"error":{"code":"function_not_found","message":"no function named \"x\""}})");
  // Bytes that are not UTF-8 (quoted from a request) do not break the JSON.
  auto doc = nlohmann::json::parse(JsonError(400, "c", "bad \xff byte").body);
  EXPECT_EQ(doc["error"]["code"], "c");
}

TEST(HttpMessageTest, HeaderLookup) {
  HttpResponse response;
  response.headers = {{"X-Ember-Instance", "i-1"}, {"server-timing", "total;dur=1"}};
  EXPECT_EQ(response.Header("x-ember-instance"), "i-1");
  EXPECT_EQ(response.Header("Server-Timing"), "total;dur=1");
  EXPECT_FALSE(response.Header("x-missing"));
  HttpRequest request;
  request.headers["content-type"] = "application/x-tar";
  EXPECT_EQ(request.Header("content-type"), "application/x-tar");
  EXPECT_EQ(request.Header("accept"), "");
  EXPECT_EQ(StatusReason(404), "Not Found");
  EXPECT_EQ(StatusReason(504), "Gateway Timeout");
}

}  // namespace
}  // namespace ember::daemon
