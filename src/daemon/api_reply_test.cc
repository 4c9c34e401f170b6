#include "daemon/api_reply.h"

#include <gtest/gtest.h>

namespace ember::daemon {
namespace {

HttpResponse Answer(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

TEST(ApiReplyTest, SuccessIsNoError) {
  EXPECT_FALSE(ParseApiError(Answer(200, "{}")));
  EXPECT_FALSE(ParseApiError(Answer(204, "")));
}

TEST(ApiReplyTest, ParsesTheErrorObject) {
  auto error = ParseApiError(
      Answer(500, R"({"error":{"code":"handler_error","type":"KeyError","message":"'x'",)"
                  R"("traceback":"Traceback...\nKeyError: 'x'\n"}})"));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 500);
  EXPECT_EQ(error->code, "handler_error");
  EXPECT_EQ(error->type, "KeyError");
  EXPECT_EQ(error->traceback, "Traceback...\nKeyError: 'x'\n");
  Error as_error = ToError(*error, "invoke f");
  EXPECT_EQ(as_error.message(), "invoke f: handler_error: KeyError: 'x'");
  EXPECT_EQ(as_error.code(), ErrorCode::kInternal);
}

TEST(ApiReplyTest, ABodyThatIsNotTheErrorJsonStillExplainsItself) {
  auto html = ParseApiError(Answer(502, "<html>bad gateway</html>\n"));
  ASSERT_TRUE(html);
  EXPECT_EQ(html->message, "<html>bad gateway</html>");
  auto empty = ParseApiError(Answer(503, ""));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->message, "the daemon answered 503 Service Unavailable");
  EXPECT_EQ(ToError(*empty, "").code(), ErrorCode::kUnavailable);
}

TEST(ApiReplyTest, ErrorCodesMapToExitCodeKinds) {
  auto code_of = [](int status, const std::string& code) {
    ApiError error;
    error.status = status;
    error.code = code;
    error.message = "m";
    return ToError(error, "").code();
  };
  EXPECT_EQ(code_of(400, "invalid_event"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of(400, "invalid_manifest"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of(404, "function_not_found"), ErrorCode::kNotFound);
  EXPECT_EQ(code_of(404, "instance_not_found"), ErrorCode::kNotFound);
  EXPECT_EQ(code_of(409, "boot_mode_unavailable"), ErrorCode::kUnavailable);
  EXPECT_EQ(code_of(413, "payload_too_large"), ErrorCode::kResourceExhausted);
  EXPECT_EQ(code_of(429, "queue_full"), ErrorCode::kResourceExhausted);
  EXPECT_EQ(code_of(504, "timeout"), ErrorCode::kTimeout);
  EXPECT_EQ(code_of(503, "shutting_down"), ErrorCode::kUnavailable);
  EXPECT_EQ(code_of(422, "init_failed"), ErrorCode::kInternal);
  EXPECT_EQ(code_of(502, "instance_crashed"), ErrorCode::kInternal);
  EXPECT_EQ(code_of(502, "out_of_memory"), ErrorCode::kInternal);
  EXPECT_EQ(code_of(429, "something_new"), ErrorCode::kResourceExhausted);
  EXPECT_EQ(code_of(405, "method_not_allowed"), ErrorCode::kInvalidArgument);
}

TEST(ApiReplyTest, TypeIsNotRepeatedWhenTheMessageStartsWithIt) {
  ApiError error;
  error.code = "init_failed";
  error.type = "ImportError";
  error.message = "ImportError: no module named x";
  EXPECT_EQ(ToError(error, "deploy f").message(),
            "deploy f: init_failed: ImportError: no module named x");
}

TEST(ApiReplyTest, ServerTiming) {
  auto timings =
      ParseServerTiming("sandbox;dur=1.234, init;dur=0, queue;desc=\"q\";dur=0.5,handler;dur=2");
  ASSERT_EQ(timings.size(), 4u);
  EXPECT_EQ(timings[0].first, "sandbox");
  EXPECT_DOUBLE_EQ(timings[0].second, 1.234);
  EXPECT_EQ(timings[1].first, "init");
  EXPECT_DOUBLE_EQ(timings[1].second, 0);
  EXPECT_EQ(timings[2].first, "queue");
  EXPECT_DOUBLE_EQ(timings[2].second, 0.5);
  EXPECT_EQ(timings[3].first, "handler");
  EXPECT_TRUE(ParseServerTiming("").empty());
  EXPECT_TRUE(ParseServerTiming("cache, total;dur=x, ;dur=1").empty());
}

TEST(ApiReplyTest, InvokeMetadata) {
  HttpResponse response = Answer(200, "{}");
  response.headers = {{"x-ember-request-id", "r-1"},
                      {"x-ember-instance", "i-2"},
                      {"x-ember-boot-mode", "warm"},
                      {"server-timing", "total;dur=3.5"}};
  InvokeMetadata meta = ParseInvokeMetadata(response);
  EXPECT_EQ(meta.request_id, "r-1");
  EXPECT_EQ(meta.instance, "i-2");
  EXPECT_EQ(meta.boot_mode, "warm");
  EXPECT_FALSE(meta.function_error);
  ASSERT_EQ(meta.timings_ms.size(), 1u);
  EXPECT_DOUBLE_EQ(meta.timings_ms[0].second, 3.5);
  response.headers.emplace_back("X-Ember-Function-Error", "handled");
  EXPECT_TRUE(ParseInvokeMetadata(response).function_error);
}

}  // namespace
}  // namespace ember::daemon
