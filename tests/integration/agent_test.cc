// ember-agent with python3.11 functions, driven over its protocol as the daemon would.
#include <gtest/gtest.h>

#include <set>

#include "integration/agent_harness.h"

namespace ember::agent::testing {
namespace {

constexpr const char* kHelloPy = R"PY(
def handler(event, context):
    print("hello from the handler:", event["name"])
    return {
        "greeting": "hello " + event["name"],
        "request_id": context.request_id,
        "function_name": context.function_name,
        "memory_limit_bytes": context.memory_limit_bytes,
        "timeout_ms": context.timeout_ms,
        "remaining_ms": context.remaining_time_ms(),
    }


def fails(event, context):
    raise ValueError("bad input: " + str(event))


def not_serializable(event, context):
    return {"values": {1, 2}}


def exits(event, context):
    raise SystemExit(3)


not_a_function = 42
)PY";

TEST_F(AgentTest, PythonHello) {
  WriteCode("app.py", kHelloPy);
  AgentProcess agent;
  agent.Init(Init("python3.11", "app.handler"));
  agent.ExpectReady();
  agent.Invoke(7, R"({"name": "ember"})", 2500);
  Json result = agent.ReadResult();
  EXPECT_EQ(result["greeting"], "hello ember");
  EXPECT_EQ(result["request_id"], "req-7");
  EXPECT_EQ(result["function_name"], "fn-under-test");
  EXPECT_EQ(result["memory_limit_bytes"], 64u << 20);
  EXPECT_EQ(result["timeout_ms"], 2500);
  EXPECT_LE(result["remaining_ms"].get<int64_t>(), 2500);
  EXPECT_GE(result["remaining_ms"].get<int64_t>(), 0);
  // print() reaches fd 1 while the agent still runs: nothing waits in a buffer.
  EXPECT_NE(agent.StdoutUntil("hello from the handler: ember\n").find("hello from the handler"),
            std::string::npos);
  EXPECT_EQ(agent.CloseAndWait(), 0);
  EXPECT_EQ(agent.Stderr(), "");
}

TEST_F(AgentTest, PythonHandlerErrorsLeaveTheInstanceUsable) {
  WriteCode("app.py", kHelloPy);
  for (const char* handler : {"app.fails", "app.not_serializable", "app.exits"}) {
    SCOPED_TRACE(handler);
    AgentProcess agent;
    agent.Init(Init("python3.11", handler));
    agent.ExpectReady();
    agent.Invoke(1, R"({"n": 1})");
    ErrorInfo error = agent.ReadError(FrameType::kError);
    if (std::string(handler) == "app.fails") {
      EXPECT_EQ(error.type, "ValueError");
      EXPECT_EQ(error.message, "bad input: {'n': 1}");
      EXPECT_NE(error.traceback.find("app.py\", line 15, in fails\n    raise ValueError"),
                std::string::npos)
          << error.traceback;
      EXPECT_NE(error.traceback.find("ValueError: bad input"), std::string::npos);
      EXPECT_EQ(error.traceback.find("ember-bootstrap"), std::string::npos) << error.traceback;
    } else if (std::string(handler) == "app.not_serializable") {
      EXPECT_EQ(error.type, "ResultNotSerializable");
      EXPECT_NE(error.message.find("set is not JSON serializable"), std::string::npos)
          << error.message;
    } else {
      EXPECT_EQ(error.type, "SystemExit");
      EXPECT_EQ(error.message, "3");
    }
    // The same instance answers the next invocation, too.
    agent.Invoke(2, R"({"n": 2})");
    EXPECT_EQ(agent.ReadError(FrameType::kError).type, error.type);
    EXPECT_EQ(agent.CloseAndWait(), 0);
  }
}

TEST_F(AgentTest, PythonInitFailuresCarryTheTraceback) {
  WriteCode("app.py", kHelloPy);
  WriteCode("broken.py", "x = 1\ndef handler(event, context:\n    pass\n");
  WriteCode("needs.py", "import os\nimport does_not_exist_anywhere\n");
  struct Case {
    const char* handler;
    const char* type;
    const char* in_message;
    const char* in_traceback;
  };
  for (const Case& c : {
           Case{"broken.handler", "SyntaxError", "broken.py, line 2",
                "def handler(event, context:"},
           Case{"needs.handler", "ModuleNotFoundError", "does_not_exist_anywhere",
                "line 2, in <module>\n    import does_not_exist_anywhere"},
           Case{"app.missing", "HandlerNotFound", "module 'app' has no function 'missing'", ""},
           Case{"app.not_a_function", "HandlerNotFound", "'app.not_a_function' is not callable",
                ""},
           Case{"nodots", "InvalidHandler", "module.function", ""},
       }) {
    SCOPED_TRACE(c.handler);
    AgentProcess agent;
    agent.Init(Init("python3.11", c.handler));
    ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
    EXPECT_EQ(error.type, c.type);
    EXPECT_NE(error.message.find(c.in_message), std::string::npos) << error.message;
    EXPECT_NE(error.traceback.find(c.in_traceback), std::string::npos) << error.traceback;
    EXPECT_EQ(agent.Wait(), 1);
  }
}

TEST_F(AgentTest, PythonDottedModuleAndPackages) {
  ASSERT_TRUE(MakeDirs(code_dir() + "/pkg/sub"));
  WriteCode("pkg/__init__.py", "");
  WriteCode("pkg/sub/__init__.py", "");
  WriteCode("pkg/sub/mod.py", "import json\ndef run(event, context):\n    return [event, None]\n");
  AgentProcess agent;
  agent.Init(Init("python3.11", "pkg.sub.mod.run"));
  agent.ExpectReady();
  agent.Invoke(1, "\"text\"");
  EXPECT_EQ(agent.ReadResult(), Json::parse(R"(["text", null])"));
  EXPECT_EQ(agent.CloseAndWait(), 0);
}

TEST_F(AgentTest, PythonWarmupRunsOnceBeforeReady) {
  WriteCode("warm.py", R"PY(
calls = []

def handler(event, context):
    calls.append((context.request_id, event))
    if event == "explode":
        raise RuntimeError("cold engine")
    return calls
)PY");
  InitRequest init = Init("python3.11", "warm.handler");
  init.warmup_event = R"({"warm": true})";
  {
    AgentProcess agent;
    agent.Init(init);
    agent.ExpectReady();
    agent.Invoke(5, "1");
    EXPECT_EQ(agent.ReadResult(), Json::parse(R"([["warmup", {"warm": true}], ["req-5", 1]])"));
    EXPECT_EQ(agent.CloseAndWait(), 0);
  }
  init.warmup_event = "\"explode\"";
  AgentProcess agent;
  agent.Init(init);
  ErrorInfo error = agent.ReadError(FrameType::kInitFailed);
  EXPECT_EQ(error.type, "RuntimeError");
  EXPECT_EQ(error.message, "warmup event failed: cold engine");
  EXPECT_EQ(agent.Wait(), 1);
}

TEST_F(AgentTest, PythonConcurrencyServesOverlappingInvocations) {
  // Each call waits at a barrier for the other: with calls served one at a time the barrier
  // would time out and both would fail. The sleep keeps both handlers busy together.
  WriteCode("pair.py", R"PY(
import threading
import time

barrier = threading.Barrier(2, timeout=15)

def handler(event, context):
    barrier.wait()
    time.sleep(0.3)
    return {"request_id": context.request_id, "event": event}
)PY");
  AgentProcess agent;
  agent.Init(Init("python3.11", "pair.handler", /*concurrency=*/2));
  agent.ExpectReady();
  agent.Invoke(11, "\"first\"");
  agent.Invoke(12, "\"second\"");
  std::set<uint64_t> answered;
  for (int i = 0; i < 2; ++i) {
    Frame frame = agent.Read();
    ASSERT_EQ(frame.type, FrameType::kResult) << frame.payload;
    Json result = Json::parse(frame.payload);
    EXPECT_EQ(result["request_id"], "req-" + std::to_string(frame.request_id));
    EXPECT_EQ(result["event"], frame.request_id == 11 ? "first" : "second");
    answered.insert(frame.request_id);
  }
  EXPECT_EQ(answered, (std::set<uint64_t>{11, 12}));
  EXPECT_EQ(agent.CloseAndWait(), 0);
}

TEST_F(AgentTest, PythonInvalidEventIsAnError) {
  WriteCode("app.py", kHelloPy);
  AgentProcess agent;
  agent.Init(Init("python3.11", "app.handler"));
  agent.ExpectReady();
  agent.Invoke(1, "{not json");
  EXPECT_EQ(agent.ReadError(FrameType::kError).type, "InvalidEvent");
  EXPECT_EQ(agent.CloseAndWait(), 0);
}

}  // namespace
}  // namespace ember::agent::testing
