// ember-agent with native and process functions, and the agent's answers to a daemon that breaks
// the protocol.
#include <gtest/gtest.h>

#include <sstream>

#include "integration/agent_harness.h"

namespace ember::agent::testing {
namespace {

using ember::testing::TestBinDir;

// The native test function lives in build/test-bin, which serves as the code directory.
InitRequest NativeInit(const std::string& symbol) {
  InitRequest init;
  init.function = "native-fn";
  init.runtime = "native";
  init.handler = "native_echo_fn.so:" + symbol;
  init.code_dir = TestBinDir();
  init.memory_limit_bytes = 1u << 30;
  return init;
}

TEST(AgentNative, EchoAndFailure) {
  {
    AgentProcess agent;
    agent.Init(NativeInit("echo"));
    agent.ExpectReady();
    agent.Invoke(3, R"({"k": [1, 2]})", 900);
    Json result = agent.ReadResult();
    EXPECT_EQ(result["event"], Json::parse(R"({"k": [1, 2]})"));
    EXPECT_EQ(result["request_id"], "req-3");
    EXPECT_EQ(result["function_name"], "native-fn");
    EXPECT_EQ(result["memory_limit_bytes"], 1u << 30);
    EXPECT_EQ(result["timeout_ms"], 900);
    EXPECT_EQ(result["initialized"], true);  // ember_function_init ran
    EXPECT_EQ(agent.CloseAndWait(), 0);
  }
  {
    AgentProcess agent;
    agent.Init(NativeInit("fail"));
    agent.ExpectReady();
    agent.Invoke(4, "{}");
    ErrorInfo error = agent.ReadError(FrameType::kError);
    EXPECT_EQ(error.type, "HandlerError");
    EXPECT_EQ(error.message, "native failure: the event was rejected");
    EXPECT_EQ(agent.CloseAndWait(), 0);
  }
  AgentProcess agent;
  agent.Init(NativeInit("not_json"));
  agent.ExpectReady();
  agent.Invoke(5, "{}");
  ErrorInfo error = agent.ReadError(FrameType::kError);
  EXPECT_EQ(error.type, "InvalidResult");
  EXPECT_NE(error.message.find("this is {not JSON"), std::string::npos) << error.message;
  EXPECT_EQ(agent.CloseAndWait(), 0);
}

TEST(AgentNative, InitFailures) {
  struct Case {
    InitRequest init;
    std::map<std::string, std::string> env;
    const char* type;
    const char* in_message;
  };
  InitRequest absolute = NativeInit("echo");
  absolute.handler = TestBinDir() + "/native_echo_fn.so:echo";
  InitRequest missing_library = NativeInit("echo");
  missing_library.handler = "nowhere.so:echo";
  for (const Case& c : {
           Case{NativeInit("no_such_symbol"), {}, "HandlerNotFound", "no_such_symbol"},
           Case{NativeInit("echo"),
                {{"NATIVE_ECHO_FAIL_INIT", "1"}},
                "FunctionInitFailed",
                "ember_function_init() in native_echo_fn.so returned 7"},
           Case{absolute, {}, "InvalidHandler", "must be relative to the code directory"},
           Case{missing_library, {}, "LibraryLoadFailed", "nowhere.so"},
       }) {
    SCOPED_TRACE(c.init.handler);
    AgentProcess agent(c.env);
    agent.Init(c.init);
    ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
    EXPECT_EQ(error.type, c.type);
    EXPECT_NE(error.message.find(c.in_message), std::string::npos) << error.message;
    EXPECT_EQ(agent.Wait(), 1);
  }
}

// Answers each request line with the whole line as its result, and errors on request.
constexpr const char* kEchoScript = R"SH(#!/bin/sh
echo "echo handler started" >&2
while IFS= read -r line; do
  case "$line" in
    *'"fail"'*) printf '%s\n' '{"error": {"type": "Refused", "message": "no thanks"}}' ;;
    *'"garbage"'*) echo 'this is not json' ;;
    *'"deep"'*) printf '{"result": %s}\n' "$(printf '%2000s' '' | tr ' ' '[')" ;;
    *) printf '{"result": {"got": %s}}\n' "$line" ;;
  esac
done
)SH";

class AgentProcessRuntime : public AgentTest {};

TEST_F(AgentProcessRuntime, LineProtocol) {
  WriteCode("handler.sh", kEchoScript);
  AgentProcess agent;
  agent.Init(Init("process", "./handler.sh", /*concurrency=*/2));
  agent.ExpectReady();
  agent.Invoke(1, "{\"multi\":\n  [1,\n 2]}", 1234);
  Json result = agent.ReadResult();
  EXPECT_EQ(result["got"]["request_id"], "req-1");
  EXPECT_EQ(result["got"]["event"], Json::parse(R"({"multi": [1, 2]})"));
  EXPECT_EQ(result["got"]["context"]["function_name"], "fn-under-test");
  EXPECT_EQ(result["got"]["context"]["request_id"], "req-1");
  EXPECT_EQ(result["got"]["context"]["timeout_ms"], 1234);
  EXPECT_EQ(result["got"]["context"]["memory_limit_bytes"], 64u << 20);

  agent.Invoke(2, "\"fail\"");
  ErrorInfo refused = agent.ReadError(FrameType::kError);
  EXPECT_EQ(refused.type, "Refused");
  EXPECT_EQ(refused.message, "no thanks");

  agent.Invoke(3, "\"garbage\"");
  ErrorInfo invalid = agent.ReadError(FrameType::kError);
  EXPECT_EQ(invalid.type, "InvalidResponse");
  EXPECT_NE(invalid.message.find("\"this is not json\""), std::string::npos) << invalid.message;

  agent.Invoke(6, "\"deep\"");
  ErrorInfo deep = agent.ReadError(FrameType::kError);
  EXPECT_EQ(deep.type, "InvalidResponse");
  EXPECT_NE(deep.message.find("nested more than 1000 levels"), std::string::npos) << deep.message;

  // Two requests at once are serialized onto the one process; both are answered.
  agent.Invoke(4, "4");
  agent.Invoke(5, "5");
  for (int i = 0; i < 2; ++i) {
    Frame frame = agent.Read();
    ASSERT_EQ(frame.type, FrameType::kResult) << frame.payload;
    EXPECT_EQ(Json::parse(frame.payload)["got"]["event"], frame.request_id);
  }
  EXPECT_EQ(agent.CloseAndWait(), 0);
  EXPECT_NE(agent.Stderr().find("echo handler started"), std::string::npos);
}

TEST_F(AgentProcessRuntime, ExitingProcessEndsTheInstance) {
  WriteCode("once.sh", "read -r line\necho 'bye' >&2\nexit 3\n");
  for (uint32_t concurrency : {1u, 2u}) {
    SCOPED_TRACE(concurrency);
    AgentProcess agent;
    agent.Init(Init("process", "sh once.sh", concurrency));
    agent.ExpectReady();
    agent.Invoke(1, "{}");
    ErrorInfo error = agent.ReadError(FrameType::kError);
    EXPECT_EQ(error.type, "ProcessExited");
    EXPECT_NE(error.message.find("exited with status 3"), std::string::npos) << error.message;
    // Even if the daemon hangs up right after the answer, the exit code says the instance broke.
    EXPECT_EQ(agent.CloseAndWait(), 1);
  }
}

TEST_F(AgentProcessRuntime, StartFailure) {
  InitRequest init = Init("process", "true");
  init.code_dir = code_dir() + "/does-not-exist";
  AgentProcess agent;
  agent.Init(init);
  ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
  EXPECT_EQ(error.type, "ProcessStartFailed");
  EXPECT_NE(error.message.find("chdir"), std::string::npos) << error.message;
  EXPECT_EQ(agent.Wait(), 1);
}

TEST(AgentBinary, LinksOnlyLibc) {
  // The agent runs on the image's libc: any other shared library would have to be in every image.
  auto ldd = ember::testing::RunCommand({"ldd", AgentBinary()});
  ASSERT_EQ(ldd.exit_code, 0) << ldd.err;
  std::istringstream lines(ldd.out);
  std::string line;
  while (std::getline(lines, line)) {
    bool allowed = false;
    for (const char* lib :
         {"linux-vdso", "ld-linux", "libc.so", "libm.so", "libdl.so", "libpthread.so"}) {
      allowed = allowed || line.find(lib) != std::string::npos;
    }
    EXPECT_TRUE(allowed) << "ember-agent needs " << line;
  }
}

TEST(AgentProtocol, GarbageInsteadOfInit) {
  AgentProcess agent;
  agent.SendRaw("GET / HTTP/1.1\r\nHost: agent\r\n\r\n");
  EXPECT_EQ(agent.Wait(), 2);
  EXPECT_NE(agent.Stderr().find("bad magic"), std::string::npos);
}

TEST(AgentProtocol, InvokeBeforeInit) {
  AgentProcess agent;
  agent.Invoke(1, "{}");
  EXPECT_EQ(agent.Wait(), 2);
  EXPECT_NE(agent.Stderr().find("expected an init frame first, got invoke"), std::string::npos);
}

TEST(AgentProtocol, MalformedInitPayload) {
  AgentProcess agent;
  agent.Send(FrameType::kInit, 1, R"({"runtime": "native"})");
  ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
  EXPECT_EQ(error.type, "InvalidInit");
  EXPECT_EQ(agent.Wait(), 2);
}

TEST(AgentProtocol, UnknownRuntime) {
  InitRequest init = NativeInit("echo");
  init.runtime = "cobol";
  AgentProcess agent;
  agent.Init(init);
  ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
  EXPECT_EQ(error.type, "UnsupportedRuntime");
  EXPECT_NE(error.message.find("\"cobol\""), std::string::npos);
  EXPECT_EQ(agent.Wait(), 1);
}

TEST(AgentProtocol, BrokenFramesAfterInit) {
  std::string bad_version;
  EncodeFrame(FrameType::kInvoke, 2, "", &bad_version);
  bad_version[4] = 9;
  std::string reply_type;
  EncodeFrame(FrameType::kReady, 3, "{}", &reply_type);
  std::string truncated;
  EncodeFrame(FrameType::kInvoke, 4, "0123456789", &truncated);
  truncated.resize(truncated.size() - 3);
  for (const auto& [bytes, in_stderr] : {std::pair{bad_version, "protocol version 9"},
                                         {reply_type, "unexpected ready frame"},
                                         {truncated, "truncated invoke frame"}}) {
    SCOPED_TRACE(in_stderr);
    AgentProcess agent;
    agent.Init(NativeInit("echo"));
    agent.ExpectReady();
    agent.SendRaw(bytes);
    int code = bytes == truncated ? agent.CloseAndWait() : agent.Wait();
    EXPECT_EQ(code, 3);
    std::string err = agent.Stderr();
    EXPECT_NE(err.find("protocol error"), std::string::npos) << err;
    EXPECT_NE(err.find(in_stderr), std::string::npos) << err;
  }
}

TEST(AgentProtocol, MalformedInvokePayloadIsAnsweredAndServingGoesOn) {
  AgentProcess agent;
  agent.Init(NativeInit("echo"));
  agent.ExpectReady();
  agent.Send(FrameType::kInvoke, 8, std::string("\x40\x00\x00\x00{}", 6));
  ErrorInfo error = agent.ReadError(FrameType::kError);
  EXPECT_EQ(error.type, "InvalidRequest");
  agent.Invoke(9, "[]");
  EXPECT_EQ(agent.ReadResult()["request_id"], "req-9");
  EXPECT_EQ(agent.CloseAndWait(), 0);
}

}  // namespace
}  // namespace ember::agent::testing
