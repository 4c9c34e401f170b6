// The daemon end to end, as a user drives it: `ember deploy`, `ember invoke`, and the HTTP API
// on the daemon's socket. Every function runs in a real sandbox on the python3.11 image.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "util/daemon_fixture.h"
#include "util/fixtures.h"

namespace ember {
namespace {

using ember::testing::EmberDaemon;
using ember::testing::EmberEnv;
using nlohmann::json;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_PRIVILEGES();
    env_.emplace();
    env_->ImportPythonImage();
    daemon_ = std::make_unique<EmberDaemon>(*env_);
    ASSERT_EQ(daemon_->start_error(), "");
  }
  void TearDown() override {
    daemon_.reset();
    if (env_) {
      EXPECT_EQ(env_->Leaks(), "");
    }
  }

  // Writes a python function bundle: ember.toml with `extra` lines, handler.py with `code`.
  std::string PythonBundle(const std::string& name, const std::string& code,
                           const std::string& extra = "") {
    std::string dir = env_->root() + "/bundles/" + name;
    EXPECT_TRUE(MakeDirs(dir));
    EXPECT_TRUE(WriteFileAtomic(dir + "/ember.toml", "name = \"" + name +
                                                         "\"\nruntime = \"python3.11\"\n"
                                                         "handler = \"handler.handle\"\n" +
                                                         extra));
    EXPECT_TRUE(WriteFileAtomic(dir + "/handler.py", code));
    return dir;
  }

  void Deploy(const std::string& dir) {
    auto r = env_->Ember({"deploy", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err << "\ndaemon: " << daemon_->Output();
  }

  daemon::HttpResponse Invoke(const std::string& name, const std::string& event = "{}",
                              const std::string& query = "") {
    return daemon_->Request("POST", "/v1/functions/" + name + "/invoke" + query, event,
                            "application/json");
  }

  static json Body(const daemon::HttpResponse& r) {
    return json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  }

  std::optional<EmberEnv> env_;
  std::unique_ptr<EmberDaemon> daemon_;
};

TEST_F(DaemonTest, DeployInvokeAndReuseTheWarmInstance) {
  Deploy(PythonBundle("hello",
                      "import socket\n"
                      "def handle(event, context):\n"
                      "    return {'hello': event.get('name', 'world'),\n"
                      "            'request': context.request_id,\n"
                      "            'function': context.function_name,\n"
                      "            'host': socket.gethostname()}\n"));
  auto r = env_->Ember({"invoke", "hello", "-d", R"({"name": "ember"})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json result = json::parse(r.out, nullptr, false);
  EXPECT_EQ(result.value("hello", ""), "ember") << r.out;
  EXPECT_EQ(result.value("function", ""), "hello");
  EXPECT_EQ(result.value("request", "").rfind("req-", 0), 0u) << r.out;

  auto first = Invoke("hello");
  auto second = Invoke("hello");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  // The instance deploy booted is reused: same instance, same hostname, no boot in the timings.
  EXPECT_EQ(first.Header("X-Ember-Instance"), second.Header("X-Ember-Instance"));
  EXPECT_EQ(Body(first)["host"], Body(second)["host"]);
  EXPECT_EQ(second.Header("X-Ember-Boot-Mode").value_or(""), "plain");
  EXPECT_NE(second.Header("Server-Timing").value_or("").find("sandbox;dur=0.000"),
            std::string::npos);

  auto listed = env_->Ember({"ls", "--output", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("\"hello\""), std::string::npos) << listed.out;
  auto ps = env_->Ember({"ps", "--output", "json"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_NE(ps.out.find(*first.Header("X-Ember-Instance")), std::string::npos) << ps.out;
}

TEST_F(DaemonTest, ForcedPlainBootStartsAFreshInstanceWithItsTimings) {
  // Without a template, so that a forced fork boot has nothing to fork from.
  Deploy(PythonBundle("fresh", "def handle(event, context):\n    return 1\n",
                      "template = \"none\"\n"));
  auto warm = Invoke("fresh");
  auto forced = Invoke("fresh", "{}", "?boot=plain");
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_NE(warm.Header("X-Ember-Instance"), forced.Header("X-Ember-Instance"));
  EXPECT_EQ(forced.Header("X-Ember-Instance-Reused").value_or(""), "false");
  EXPECT_EQ(forced.Header("Server-Timing").value_or("").find("sandbox;dur=0.000"),
            std::string::npos);
  auto fork = Invoke("fresh", "{}", "?boot=fork");
  EXPECT_EQ(fork.status, 409) << fork.body;
  EXPECT_NE(fork.body.find("boot mode fork is not available"), std::string::npos) << fork.body;
  EXPECT_NE(fork.body.find("template = \\\"none\\\""), std::string::npos) << fork.body;
}

TEST_F(DaemonTest, BadRequestsGetClearErrorsAndTheDaemonKeepsServing) {
  Deploy(PythonBundle("ok", "def handle(event, context):\n    return event\n"));
  auto missing = Invoke("nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Body(missing)["error"]["code"], "function_not_found");
  auto not_json = Invoke("ok", "{not json");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_EQ(Body(not_json)["error"]["code"], "invalid_event");
  auto huge = Invoke("ok", "\"" + std::string(7 << 20, 'x') + "\"");
  EXPECT_EQ(huge.status, 413) << huge.body.substr(0, 200);
  auto cli = env_->Ember({"invoke", "nope"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("no function named 'nope'"), std::string::npos) << cli.err;
  auto echo = Invoke("ok", R"({"still": "serving"})");
  ASSERT_EQ(echo.status, 200) << echo.body;
  EXPECT_EQ(Body(echo)["still"], "serving");
}

TEST_F(DaemonTest, InvalidManifestAndBrokenCodeAreRefusedAtDeploy) {
  std::string bad =
      PythonBundle("badmem", "def handle(e, c):\n    return 1\n", "memory = \"12XB\"\n");
  auto r = env_->Ember({"deploy", bad});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("memory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("12XB"), std::string::npos) << r.err;

  std::string syntax = PythonBundle("syntax", "def handle(event, context)\n    return 1\n");
  r = env_->Ember({"deploy", syntax});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("SyntaxError"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("handler.py"), std::string::npos) << r.err;  // the traceback

  std::string missing = PythonBundle("nohandler", "def other(event, context):\n    return 1\n");
  r = env_->Ember({"deploy", missing});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("handle"), std::string::npos) << r.err;
  // None of them was stored.
  auto list = daemon_->Request("GET", "/v1/functions");
  EXPECT_EQ(Body(list)["functions"].size(), 0u) << list.body;
}

TEST_F(DaemonTest, HandlerErrorsAreReportedWithTheTraceback) {
  Deploy(PythonBundle("raises",
                      "def handle(event, context):\n"
                      "    if event.get('kind') == 'set':\n"
                      "        return {1, 2}\n"
                      "    return 1 / 0\n"));
  auto r = Invoke("raises");
  EXPECT_EQ(r.status, 500);
  json error = Body(r)["error"];
  EXPECT_EQ(error["code"], "handler_error");
  EXPECT_EQ(error["type"], "ZeroDivisionError");
  EXPECT_NE(error["traceback"].get<std::string>().find("handler.py"), std::string::npos);
  EXPECT_EQ(r.Header("X-Ember-Function-Error").value_or(""), "handled");
  auto set = Invoke("raises", R"({"kind": "set"})");
  EXPECT_EQ(set.status, 500);
  EXPECT_EQ(Body(set)["error"]["type"], "ResultNotSerializable") << set.body;
  auto cli = env_->Ember({"invoke", "raises"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("ZeroDivisionError"), std::string::npos) << cli.err;
  // The instance survives a handler error.
  EXPECT_EQ(r.Header("X-Ember-Instance"), set.Header("X-Ember-Instance"));
}

TEST_F(DaemonTest, TimeoutKillsTheInstanceAndTheNextCallGetsAFreshOne) {
  Deploy(PythonBundle("sleepy",
                      "import time\n"
                      "def handle(event, context):\n"
                      "    time.sleep(event.get('s', 0))\n"
                      "    return 'done'\n",
                      "timeout = \"500ms\"\n"));
  auto slow = Invoke("sleepy", R"({"s": 30})");
  EXPECT_EQ(slow.status, 504) << slow.body;
  std::string message = Body(slow)["error"]["message"];
  EXPECT_NE(message.find("timed out after 500ms"), std::string::npos) << message;
  EXPECT_NE(message.find("was killed"), std::string::npos) << message;
  auto next = Invoke("sleepy");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_NE(next.Header("X-Ember-Instance"), slow.Header("X-Ember-Instance"));
}

TEST_F(DaemonTest, CrashesAndOomKillsNameTheCauseAndTheInstanceIsReplaced) {
  Deploy(PythonBundle("crashy",
                      "import os, signal\n"
                      "def handle(event, context):\n"
                      "    what = event.get('do')\n"
                      "    if what == 'exit':\n"
                      "        os._exit(3)\n"
                      "    if what == 'parent':\n"
                      "        os.kill(os.getppid(), signal.SIGKILL)\n"
                      "        os.kill(os.getpid(), signal.SIGKILL)\n"
                      "    if what == 'oom':\n"
                      "        block = []\n"
                      "        while True:\n"
                      "            block.append(bytearray(16 << 20))\n"
                      "    return 'fine'\n",
                      "memory = \"96MiB\"\n"));
  auto exited = Invoke("crashy", R"({"do": "exit"})");
  EXPECT_EQ(exited.status, 502);
  EXPECT_EQ(Body(exited)["error"]["code"], "instance_crashed");
  EXPECT_NE(exited.body.find("exit"), std::string::npos) << exited.body;
  EXPECT_NE(exited.body.find("3"), std::string::npos) << exited.body;

  // The agent is pid 1 of the sandbox: the kernel drops signals sent to it from inside its own
  // namespace, so "killing the parent" (pid 0/1 from the handler's view) cannot take it down.
  auto parent = Invoke("crashy", R"({"do": "parent"})");
  EXPECT_EQ(parent.status, 200) << parent.body;
  EXPECT_EQ(parent.body, "\"fine\"");

  auto oom = Invoke("crashy", R"({"do": "oom"})");
  EXPECT_EQ(oom.status, 502) << oom.body;
  EXPECT_EQ(Body(oom)["error"]["code"], "out_of_memory") << oom.body;
  EXPECT_NE(oom.body.find("96M"), std::string::npos) << oom.body;

  auto fine = Invoke("crashy");
  EXPECT_EQ(fine.status, 200) << fine.body;
}

TEST_F(DaemonTest, OutputGoesToCappedPerInstanceLogs) {
  Deploy(PythonBundle("chatty",
                      "import sys\n"
                      "print('imported')\n"
                      "def handle(event, context):\n"
                      "    if event.get('flood'):\n"
                      "        chunk = 'x' * 1023 + '\\n'\n"
                      "        for _ in range(100 * 1024):\n"
                      "            sys.stdout.write(chunk)\n"
                      "    print('handled', event.get('n'))\n"
                      "    return 'ok'\n"));
  ASSERT_EQ(Invoke("chatty", R"({"n": 7})").status, 200);
  auto flood = Invoke("chatty", R"({"flood": true, "n": 8})");
  ASSERT_EQ(flood.status, 200) << flood.body;
  std::string logs;
  for (int i = 0; i < 100 && logs.find("handled 8") == std::string::npos; ++i) {
    logs = env_->Ember({"logs", "chatty"}).out;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(logs.find("handled 8"), std::string::npos) << logs.substr(0, 300);
  // 100 MB printed, but what is kept per instance is capped.
  uint64_t kept = 0;
  auto files = ListDirectory(env_->data_dir() + "/logs/chatty");
  ASSERT_TRUE(files);
  for (const auto& f : *files) {
    auto text = ReadFile(env_->data_dir() + "/logs/chatty/" + f);
    if (text) kept += text->size();
  }
  EXPECT_LE(kept, 4u << 20);
  EXPECT_EQ(Invoke("chatty").status, 200);
}

TEST_F(DaemonTest, IdleInstancesAreReapedAfterKeepAlive) {
  Deploy(PythonBundle("brief", "def handle(event, context):\n    return 1\n",
                      "keep_alive = \"1s\"\n"));
  ASSERT_EQ(Invoke("brief").status, 200);
  json instances;
  for (int i = 0; i < 60; ++i) {
    instances = Body(daemon_->Request("GET", "/v1/instances"))["instances"];
    if (instances.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(instances.empty()) << instances.dump();
  EXPECT_EQ(Invoke("brief").status, 200);
}

TEST_F(DaemonTest, BusyFunctionQueuesThenRefusesWith429) {
  Deploy(PythonBundle("single",
                      "import time\n"
                      "def handle(event, context):\n"
                      "    time.sleep(1)\n"
                      "    return 1\n",
                      "max_instances = 1\n"));
  daemon_.reset();  // restart with a queue of one
  daemon_ = std::make_unique<EmberDaemon>(*env_, std::vector<std::string>{"--queue-size", "1"});
  ASSERT_EQ(daemon_->start_error(), "");
  std::vector<int> statuses(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150 * i));
      statuses[i] = Invoke("single").status;
    });
  }
  for (auto& t : threads) t.join();
  std::sort(statuses.begin(), statuses.end());
  EXPECT_EQ(statuses, (std::vector<int>{200, 200, 429}));
}

TEST_F(DaemonTest, RedeployServesTheNewCodeAndRemoveForgetsTheFunction) {
  std::string dir = PythonBundle("versions", "def handle(event, context):\n    return 'v1'\n");
  Deploy(dir);
  EXPECT_EQ(Invoke("versions").body, "\"v1\"");
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/handler.py", "def handle(event, context):\n    return 'v2'\n"));
  Deploy(dir);
  EXPECT_EQ(Invoke("versions").body, "\"v2\"");
  auto removed = env_->Ember({"rm", "versions"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(Invoke("versions").status, 404);
  EXPECT_FALSE(PathExists(env_->data_dir() + "/functions/versions"));
}

TEST_F(DaemonTest, DeployedFunctionsSurviveADaemonKilledWithSigkill) {
  Deploy(PythonBundle("durable", "def handle(event, context):\n    return 'still here'\n"));
  ASSERT_EQ(Invoke("durable").status, 200);
  EXPECT_EQ(daemon_->Stop(SIGKILL), 128 + SIGKILL);
  daemon_ = std::make_unique<EmberDaemon>(*env_);
  ASSERT_EQ(daemon_->start_error(), "");
  auto r = Invoke("durable");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "\"still here\"");
}

TEST_F(DaemonTest, SigtermLetsTheInvocationInFlightFinish) {
  Deploy(PythonBundle("finishing",
                      "import time\n"
                      "def handle(event, context):\n"
                      "    time.sleep(1)\n"
                      "    return 'finished'\n"));
  daemon::HttpResponse response;
  std::thread caller([&] { response = Invoke("finishing"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(daemon_->Stop(SIGTERM), 0) << daemon_->Output();
  caller.join();
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.body, "\"finished\"");
  daemon_.reset();
}

TEST_F(DaemonTest, MetricsCountInvocationsAndBoots) {
  Deploy(PythonBundle("counted", "def handle(event, context):\n    return 1\n"));
  ASSERT_EQ(Invoke("counted").status, 200);
  auto metrics = daemon_->Request("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("ember_invocations_total{function=\"counted\",outcome=\"ok\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(
      metrics.body.find("ember_boots_total{function=\"counted\",mode=\"plain\",result=\"ok\"} 1"),
      std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("ember_instances{function=\"counted\",state=\"idle\"} 1"),
            std::string::npos)
      << metrics.body;
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {

// The bundles in examples/, deployed and invoked as examples/README.md shows. The native one is
// built into a copy of its bundle, so the source tree stays clean.
TEST_F(DaemonTest, ExamplesDeployAndAnswerAsDocumented) {
  std::string examples = std::string(EMBER_SOURCE_DIR) + "/examples";
  std::string native = env_->root() + "/native-c";
  ASSERT_EQ(ember::testing::RunCommand({"cp", "-r", examples + "/native-c", native}).exit_code, 0);
  // What examples/native-c/Makefile does, with the header found from the copy.
  auto made = ember::testing::RunCommand({"cc", "-shared", "-fPIC", "-O2",
                                          "-I" + std::string(EMBER_SOURCE_DIR) + "/include", "-o",
                                          native + "/libhello.so", native + "/hello.c"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Deploy(examples + "/hello-python");
  Deploy(examples + "/json-transform");
  Deploy(native);
  Deploy(examples + "/process-shell");

  auto hello = env_->Ember({"invoke", "hello-python", "-d", R"({"name": "ember"})"});
  EXPECT_EQ(hello.out, "{\"greeting\":\"Hello, ember!\"}\n") << hello.err;
  auto transform = env_->Ember(
      {"invoke", "json-transform", "-d",
       R"({"records": [{"group": "eu", "value": 12.5}, {"group": "eu", "value": 7.5}, {"group": "us", "value": 3}]})"});
  ASSERT_EQ(transform.exit_code, 0) << transform.err;
  json t = json::parse(transform.out, nullptr, false);
  EXPECT_EQ(t["count"], 3) << transform.out;
  EXPECT_EQ(t["top_group"], "eu") << transform.out;
  auto c = env_->Ember({"invoke", "native-c", "-d", R"({"name":"ember"})"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("\"greeting\":\"Hello, ember!\""), std::string::npos) << c.out;
  auto shell = env_->Ember({"invoke", "process-shell", "-d", R"("the quick brown fox")"});
  EXPECT_EQ(shell.out, "{\"chars\":19,\"lines\":1,\"words\":4}\n") << shell.err;
  // Errors from each kind of handler reach the caller.
  auto bad = env_->Ember({"invoke", "process-shell", "-d", R"({"a": 1})"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("BadEvent"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {

// A free loopback TCP port (bound and released: good enough for a test).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(DaemonSideBySide, TwoDaemonsWithTheirOwnDirsServeTheirOwnFunctions) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv a, b;
  a.ImportPythonImage();
  b.ImportPythonImage();
  int port = FreePort();
  {
    EmberDaemon da(a, {"--listen", "127.0.0.1:" + std::to_string(port)});
    EmberDaemon db(b);
    ASSERT_EQ(da.start_error(), "");
    ASSERT_EQ(db.start_error(), "");
    for (auto* env : {&a, &b}) {
      std::string dir = env->root() + "/same";
      ASSERT_TRUE(MakeDirs(dir));
      ASSERT_TRUE(WriteFileAtomic(dir + "/ember.toml",
                                  "name = \"same\"\nruntime = \"python3.11\"\n"
                                  "handler = \"handler.handle\"\n"));
      ASSERT_TRUE(WriteFileAtomic(dir + "/handler.py",
                                  "def handle(event, context):\n    return '" +
                                      std::string(env == &a ? "from a" : "from b") + "'\n"));
      auto r = env->Ember({"deploy", dir});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    EXPECT_EQ(a.Ember({"invoke", "same"}).out, "\"from a\"\n");
    EXPECT_EQ(b.Ember({"invoke", "same"}).out, "\"from b\"\n");
    // The same daemon over loopback TCP.
    auto tcp = a.Ember({"--socket", "http://127.0.0.1:" + std::to_string(port), "invoke", "same"});
    EXPECT_EQ(tcp.out, "\"from a\"\n") << tcp.err;
    // A second daemon on a data dir already served is refused.
    auto again = a.Ember({"daemon"}, "", 30);
    EXPECT_NE(again.exit_code, 0);
    EXPECT_NE(again.err.find("another ember daemon is using " + a.data_dir()), std::string::npos)
        << again.err;
  }
  EXPECT_EQ(a.Leaks(), "");
  EXPECT_EQ(b.Leaks(), "");
}

TEST(DaemonClient, SaysSoWhenTheDaemonIsNotRunning) {
  EmberEnv env;
  auto r = env.Ember({"ls"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot reach the ember daemon at " + env.run_dir() + "/ember.sock"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("is `ember daemon` running?"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ember
