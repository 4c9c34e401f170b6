// The client commands (invoke, ls, ps, rm, logs) run as the real `ember` binary against a fake
// daemon (an HttpServer in this process), so what is checked is what a user sees: stdout, stderr
// and the exit code. Skipped when the ember binary is not built next to the unit tests.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "daemon/http_test_server.h"

extern char** environ;

namespace ember::cli {
namespace {

using daemon::HttpRequest;
using daemon::HttpResponse;
using daemon::JsonError;
using daemon::JsonResponse;
using daemon::Responder;
using ::testing::HasSubstr;

struct EmberRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string EmberPath() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/')) + "/ember";
}

// Runs ember with `args`, feeding `input`; after `interrupt_after` (if set) sends SIGINT, like a
// user's Ctrl-C. Gives up (SIGKILL) after 30 s.
EmberRun RunEmber(const std::vector<std::string>& args, const std::string& input = "",
                  std::chrono::milliseconds interrupt_after = std::chrono::milliseconds(0)) {
  EmberRun run;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return run;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<std::string> argv = {EmberPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int spawned = ::posix_spawn(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (spawned == 0) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  auto start = std::chrono::steady_clock::now();
  bool interrupted = false;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = spawned == 0 ? 2 : 0;
  while (open > 0) {
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (interrupt_after.count() > 0 && !interrupted && elapsed >= interrupt_after) {
      ::kill(pid, SIGINT);
      interrupted = true;
    }
    if (elapsed > std::chrono::seconds(30)) ::kill(pid, SIGKILL);
    if (::poll(fds, 2, 50) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? run.out : run.err).append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  if (spawned == 0 && ::waitpid(pid, &status, 0) == pid) {
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return run;
}

class ClientCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(EmberPath().c_str(), X_OK) != 0) GTEST_SKIP() << "no ember binary beside me";
    socket_ = dir_.path() + "/ember.sock";
    daemon::HttpServerOptions options;
    options.unix_socket = socket_;
    ASSERT_TRUE(server_.Start(options, [this](HttpRequest&& request, const Responder& respond) {
      HttpResponse response = Answer(request);
      std::lock_guard lock(mutex_);
      requests_.push_back(std::move(request));
      respond(std::move(response));
    }));
  }

  // The fake daemon: canned answers in the API's shapes (docs/api.md).
  static HttpResponse Answer(const HttpRequest& request) {
    const std::string& path = request.path;
    if (path == "/v1/functions/hello/invoke") {
      if (nlohmann::json::parse(request.body, nullptr, false).is_discarded()) {
        return JsonError(400, "invalid_event", "the event is not valid JSON");
      }
      HttpResponse response = JsonResponse(200, R"({"echo":)" + request.body + "}");
      response.headers = {
          {"X-Ember-Request-Id", "r-9"},
          {"X-Ember-Instance", "i-7"},
          {"X-Ember-Boot-Mode", "fork"},
          {"Server-Timing", "sandbox;dur=0.412, init;dur=0.000, handler;dur=1.5, total;dur=2.25"}};
      return response;
    }
    if (path == "/v1/functions/broken/invoke") {
      HttpResponse response = JsonResponse(
          500, nlohmann::json{{"error",
                               {{"code", "handler_error"},
                                {"type", "ZeroDivisionError"},
                                {"message", "division by zero"},
                                {"traceback",
                                 "Traceback (most recent call last):\n  File \"main.py\", line 2, "
                                 "in handler\nZeroDivisionError: division by zero\n"}}}}
                   .dump());
      response.headers = {{"X-Ember-Function-Error", "handled"}};
      return response;
    }
    if (path == "/v1/functions/slow/invoke") {
      return JsonError(504, "timeout", "function slow timed out after 3s; instance i-3 was killed");
    }
    if (path == "/v1/functions/hello" && request.method == "PUT") {
      // A tar: the ustar magic of the first header block, at offset 257.
      if (request.Header("content-type") != "application/x-tar" || request.body.size() < 512 ||
          request.body.compare(257, 5, "ustar") != 0) {
        return JsonError(400, "invalid_bundle", "not a tar archive");
      }
      return JsonResponse(201, R"({"name":"hello","version":"5f0c8d2a9b1e4c37","deploy_ms":41.5})");
    }
    if (path == "/v1/functions/failing" && request.method == "PUT") {
      return JsonResponse(
          422,
          nlohmann::json{{"error",
                          {{"code", "init_failed"},
                           {"type", "ModuleNotFoundError"},
                           {"message", "No module named 'numpy'"},
                           {"traceback",
                            "Traceback (most recent call last):\n  File \"/function/main.py\", "
                            "line 1, in <module>\nModuleNotFoundError: No module named 'numpy'"},
                           {"output", "importing main\n"}}}}
              .dump());
    }
    if (path == "/v1/functions" && request.method == "GET") {
      return JsonResponse(
          200,
          R"({"functions":[{"name":"hello","version":"0123456789abcdef","deployed":"2026-11-21T15:00:00Z",)"
          R"("manifest":{"runtime":"python3.11","image":"python3.11","memory_bytes":134217728},)"
          R"("instances":{"booting":0,"idle":2,"busy":1},"template":null}]})");
    }
    if (path == "/v1/instances" && request.method == "GET") {
      return JsonResponse(
          200, R"({"instances":[{"id":"i-7","function":"hello","version":"0123456789abcdef",)"
               R"("state":"idle","boot_mode":"fork","pid":4242,"started":"2026-11-21T15:00:00Z",)"
               R"("last_used":"2026-11-21T15:00:01Z","invocations":3,"in_flight":0}]})");
    }
    if (path == "/v1/functions/hello" && request.method == "DELETE") {
      HttpResponse response;
      response.status = 204;
      return response;
    }
    if (path == "/v1/functions/hello/logs") {
      auto offset = request.query.find("offset");
      int next = offset == request.query.end() ? 1 : std::stoi(offset->second) + 1;
      HttpResponse response;
      response.content_type = "text/plain";
      response.body = "line " + std::to_string(next) + "\n";
      response.headers = {{"X-Ember-Log-Offset", std::to_string(next)}};
      return response;
    }
    return JsonError(404, "function_not_found", "no function named " + path);
  }

  std::vector<HttpRequest> Requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  EmberRun Ember(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--socket", socket_});
    return RunEmber(args, input);
  }

  daemon::testing::ScratchDir dir_;
  std::string socket_;
  daemon::testing::ServerThread server_;
  std::mutex mutex_;
  std::vector<HttpRequest> requests_;
};

TEST_F(ClientCommandsTest, InvokePrintsTheResultAndVerboseDetails) {
  EmberRun run = Ember({"invoke", "hello", "-d", R"({"a": 1})", "--boot", "fork", "-v"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"echo\":{\"a\": 1}}\n");
  EXPECT_THAT(run.err, HasSubstr("request   r-9"));
  EXPECT_THAT(run.err, HasSubstr("instance  i-7 (boot fork)"));
  EXPECT_THAT(run.err, HasSubstr("sandbox 0.412 ms, init 0.000 ms, handler 1.500 ms, "
                                 "total 2.250 ms"));
  auto requests = Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].query.at("boot"), "fork");
  EXPECT_EQ(requests[0].Header("content-type"), "application/json");
}

TEST_F(ClientCommandsTest, InvokeReadsTheEventFromAFileOrStdinAndDefaultsToEmpty) {
  EXPECT_EQ(Ember({"invoke", "hello"}).out, "{\"echo\":{}}\n");
  ASSERT_TRUE(WriteFileAtomic(dir_.path() + "/event.json", R"({"from":"file"})"));
  EXPECT_EQ(Ember({"invoke", "hello", "-d", "@" + dir_.path() + "/event.json"}).out,
            "{\"echo\":{\"from\":\"file\"}}\n");
  EXPECT_EQ(Ember({"invoke", "hello", "-d", "@-"}, R"({"from":"stdin"})").out,
            "{\"echo\":{\"from\":\"stdin\"}}\n");
  EmberRun missing = Ember({"invoke", "hello", "-d", "@" + dir_.path() + "/none.json"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_THAT(missing.err, HasSubstr("read the event file"));
}

TEST_F(ClientCommandsTest, InvokeSendsANonJsonEventAsIsAndShowsTheDaemonsRefusal) {
  EmberRun run = Ember({"invoke", "hello", "-d", "not json"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "ember: invoke hello: invalid_event: the event is not valid JSON\n");
  EXPECT_EQ(Requests().at(0).body, "not json");
}

TEST_F(ClientCommandsTest, InvokeReportsAFunctionErrorWithItsTraceback) {
  EmberRun run = Ember({"invoke", "broken"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err,
            "ember: invoke broken: handler_error: ZeroDivisionError: division by zero\n"
            "Traceback (most recent call last):\n  File \"main.py\", line 2, in handler\n"
            "ZeroDivisionError: division by zero\n");
  EmberRun json = Ember({"invoke", "broken", "-o", "json"});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(json.out)["error"]["code"], "handler_error");
}

TEST_F(ClientCommandsTest, ExitCodesFollowTheErrorKind) {
  EmberRun timeout = Ember({"invoke", "slow"});
  EXPECT_EQ(timeout.exit_code, 9);
  EXPECT_THAT(timeout.err, HasSubstr("timed out after 3s; instance i-3 was killed"));
  EmberRun missing = Ember({"invoke", "nothing"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_EQ(Ember({"invoke", "hello", "--boot", "sideways"}).exit_code, 2);
  EXPECT_EQ(Ember({"ls", "-o", "yaml"}).exit_code, 2);
}

TEST_F(ClientCommandsTest, NoDaemon) {
  std::string nowhere = dir_.path() + "/nowhere.sock";
  EmberRun run = RunEmber({"--socket", nowhere, "ls"});
  EXPECT_EQ(run.exit_code, 7);
  EXPECT_EQ(run.err, "ember: cannot reach the ember daemon at " + nowhere +
                         ": ENOENT (is `ember daemon` running? start it, or set --socket / "
                         "EMBER_SOCKET)\n");
}

TEST_F(ClientCommandsTest, DeployPacksTheBundleAndPrintsTheVersion) {
  std::string bundle = dir_.path() + "/bundle";
  ASSERT_TRUE(MakeDirs(bundle));
  ASSERT_TRUE(
      WriteFileAtomic(bundle + "/ember.toml",
                      "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"main.handler\"\n"));
  ASSERT_TRUE(WriteFileAtomic(bundle + "/main.py", "def handler(event):\n    return event\n"));
  EmberRun run = Ember({"deploy", bundle});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, ::testing::MatchesRegex("deployed hello \\(version 5f0c8d2a9b1e4c37\\) in "
                                               "[0-9]+ ms\n"));
  auto requests = Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].path, "/v1/functions/hello");

  EmberRun json = Ember({"deploy", bundle, "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["deploy_ms"], 41.5);
}

TEST_F(ClientCommandsTest, DeployShowsAnInitFailureWithItsTracebackAndOutput) {
  std::string bundle = dir_.path() + "/failing";
  ASSERT_TRUE(MakeDirs(bundle));
  ASSERT_TRUE(WriteFileAtomic(
      bundle + "/ember.toml",
      "name = \"failing\"\nruntime = \"python3.11\"\nhandler = \"main.handler\"\n"));
  ASSERT_TRUE(WriteFileAtomic(bundle + "/main.py", "import numpy\n"));
  EmberRun run = Ember({"deploy", bundle});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(
      run.err,
      "ember: deploy failing: init_failed: ModuleNotFoundError: No module named 'numpy'\n"
      "Traceback (most recent call last):\n  File \"/function/main.py\", line 1, in <module>\n"
      "ModuleNotFoundError: No module named 'numpy'\n"
      "output of the instance:\nimporting main\n");
}

TEST_F(ClientCommandsTest, DeployChecksTheManifestBeforeSendingAnything) {
  std::string bundle = dir_.path() + "/broken";
  ASSERT_TRUE(MakeDirs(bundle));
  ASSERT_TRUE(WriteFileAtomic(
      bundle + "/ember.toml",
      "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"missing.handler\"\n"));
  EmberRun run = Ember({"deploy", bundle});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr("missing"));
  EXPECT_TRUE(Requests().empty());
}

TEST_F(ClientCommandsTest, LsAndPsPrintTablesOrTheDaemonsJson) {
  EmberRun ls = Ember({"ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr("NAME   VERSION           RUNTIME     IMAGE       MEMORY  IDLE  "
                                "BUSY  BOOTING  DEPLOYED\n"));
  EXPECT_THAT(ls.out, HasSubstr("hello  0123456789abcdef  python3.11  python3.11  128M    2     "
                                "1     0        2026-11-21T15:00:00Z\n"));
  EmberRun json = Ember({"ls", "--output", "json"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["functions"][0]["name"], "hello");

  EmberRun ps = Ember({"ps"});
  EXPECT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_THAT(ps.out, HasSubstr("ID   FUNCTION  VERSION           STATE  BOOT  PID   STARTED"));
  EXPECT_THAT(ps.out, HasSubstr("i-7  hello     0123456789abcdef  idle   fork  4242"));
  EXPECT_EQ(nlohmann::json::parse(Ember({"ps", "-o", "json"}).out)["instances"][0]["pid"], 4242);
}

TEST_F(ClientCommandsTest, RmRemovesAndReportsUnknownNames) {
  EmberRun run = Ember({"rm", "hello", "ghost"});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_THAT(run.err, HasSubstr("removed function hello\n"));
  EXPECT_THAT(run.err, HasSubstr("ember: remove function ghost: function_not_found:"));
  auto requests = Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "DELETE");
  EXPECT_EQ(requests[1].path, "/v1/functions/ghost");
  EXPECT_EQ(Ember({"rm", "-i", "i-1"}).exit_code, 3);
  EXPECT_EQ(Requests().back().path, "/v1/instances/i-1");
}

TEST_F(ClientCommandsTest, LogsFollowsFromTheReturnedOffsetUntilInterrupted) {
  EmberRun once = Ember({"logs", "hello", "--instance", "i-7"});
  EXPECT_EQ(once.exit_code, 0);
  EXPECT_EQ(once.out, "line 1\n");
  EXPECT_EQ(Requests().at(0).query.at("instance"), "i-7");

  EmberRun follow =
      RunEmber({"--socket", socket_, "logs", "hello", "-f"}, "", std::chrono::milliseconds(1200));
  EXPECT_EQ(follow.exit_code, 128 + SIGINT);
  EXPECT_THAT(follow.out, ::testing::StartsWith("line 1\nline 2\n"));
  auto requests = Requests();
  ASSERT_GE(requests.size(), 3u);
  EXPECT_EQ(requests[1].query.count("offset"), 0u);
  EXPECT_EQ(requests[2].query.at("offset"), "1");
}

}  // namespace
}  // namespace ember::cli
