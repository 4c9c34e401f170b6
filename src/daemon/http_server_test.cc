#include "daemon/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "daemon/http_client.h"
#include "daemon/http_test_server.h"

namespace ember::daemon {
namespace {

using ::testing::HasSubstr;
using testing::RawClient;
using testing::ScratchDir;
using testing::ServerThread;
using ::testing::StartsWith;

// Polls `done` for up to 10 s, so that a broken server fails the test instead of hanging it.
template <typename Fn>
bool WaitUntil(Fn done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Answers every request with a JSON description of it.
void Echo(HttpRequest&& request, const Responder& respond) {
  nlohmann::json query = request.query;
  nlohmann::json doc = {{"method", request.method},
                        {"path", request.path},
                        {"query", query},
                        {"body", request.body},
                        {"content_type", request.Header("content-type")}};
  HttpResponse response = JsonResponse(request.method == "PUT" ? 201 : 200, doc.dump());
  response.headers.emplace_back("X-Ember-Request-Id", "r-1");
  respond(std::move(response));
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    socket_ = dir_.path() + "/run/ember.sock";
  }

  HttpServerOptions Options() const {
    HttpServerOptions options;
    options.unix_socket = socket_;
    return options;
  }

  void StartEcho() { ASSERT_TRUE(server_.Start(Options(), Echo)); }

  nlohmann::json Call(std::string_view method, std::string_view target, std::string_view body = {},
                      int expected_status = 200) {
    auto response = client_.Request(method, target, body, "application/json");
    EXPECT_TRUE(response) << response.error().ToString();
    if (!response) return {};
    EXPECT_EQ(response->status, expected_status) << response->body;
    return nlohmann::json::parse(response->body, nullptr, false);
  }

  ScratchDir dir_;
  std::string socket_;
  ServerThread server_;
  HttpClient client_{""};
};

TEST_F(HttpServerTest, RoundTripsEveryMethod) {
  StartEcho();
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/v1/functions")["method"], "GET");
  auto put = Call("PUT", "/v1/functions/hello", "tar bytes", 201);
  EXPECT_EQ(put["method"], "PUT");
  EXPECT_EQ(put["path"], "/v1/functions/hello");
  EXPECT_EQ(put["body"], "tar bytes");
  EXPECT_EQ(put["content_type"], "application/json");
  auto post = Call("POST", "/v1/functions/hello/invoke", R"({"x":1})");
  EXPECT_EQ(post["body"], R"({"x":1})");
  EXPECT_EQ(Call("DELETE", "/v1/functions/hello")["method"], "DELETE");

  auto response = client_.Request("GET", "/x");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->content_type, "application/json");
  EXPECT_EQ(response->Header("x-ember-request-id"), "r-1");
  EXPECT_EQ(response->Header("X-Ember-Request-Id"), "r-1");
}

TEST_F(HttpServerTest, DecodesPathAndQuery) {
  StartEcho();
  client_ = HttpClient(socket_);
  auto doc =
      Call("GET", "/v1/functions/h%C3%A9llo%20w/logs?instance=i-1&offset=42&msg=a%26b+c&flag");
  EXPECT_EQ(doc["path"], "/v1/functions/h\xC3\xA9llo w/logs");
  EXPECT_EQ(doc["query"]["instance"], "i-1");
  EXPECT_EQ(doc["query"]["offset"], "42");
  EXPECT_EQ(doc["query"]["msg"], "a&b c");
  EXPECT_EQ(doc["query"]["flag"], "");

  auto bad = client_.Request("GET", "/v1/functions/%zz");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto error = nlohmann::json::parse(bad->body);
  EXPECT_EQ(error["error"]["code"], "invalid_request");
  EXPECT_THAT(error["error"]["message"].get<std::string>(), HasSubstr("percent-encoding"));
  // A bad escape is not a broken stream: the connection keeps serving.
  EXPECT_EQ(Call("GET", "/ok")["path"], "/ok");
}

TEST_F(HttpServerTest, RefusesALargeBodyWithoutCallingTheHandler) {
  std::atomic<int> calls = 0;
  HttpServerOptions options = Options();
  options.max_body_bytes = 1024;
  ASSERT_TRUE(server_.Start(options, [&](HttpRequest&& request, Responder respond) {
    ++calls;
    Echo(std::move(request), respond);
  }));
  client_ = HttpClient(socket_);
  auto response = client_.Request("POST", "/v1/functions/f/invoke", std::string(2000, 'x'));
  ASSERT_TRUE(response) << response.error().ToString();
  EXPECT_EQ(response->status, 413);
  auto error = nlohmann::json::parse(response->body);
  EXPECT_EQ(error["error"]["code"], "payload_too_large");
  EXPECT_THAT(error["error"]["message"].get<std::string>(), HasSubstr("limit of 1024 bytes"));
  EXPECT_EQ(calls, 0);

  // At the limit is fine (and the client reconnected after the 413 closed its connection).
  EXPECT_EQ(Call("POST", "/v1/functions/f/invoke", std::string(1024, 'x'))["path"],
            "/v1/functions/f/invoke");
  EXPECT_EQ(calls, 1);

  // A chunked body has no Content-Length: it is cut off while it is read.
  RawClient raw(socket_);
  ASSERT_TRUE(raw.connected());
  std::string chunk(800, 'y');
  ASSERT_TRUE(raw.Send("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" +
                       chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n"));
  EXPECT_THAT(raw.ReadToEnd(), StartsWith("HTTP/1.1 413"));
  EXPECT_EQ(calls, 1);
}

TEST_F(HttpServerTest, BodyLimitsPerRequest) {
  std::atomic<int> calls = 0;
  HttpServerOptions options = Options();
  options.max_body_bytes = 1024;
  options.body_limit = [](std::string_view method, const std::string& path) -> uint64_t {
    return method == "PUT" && path.rfind("/v1/functions/", 0) == 0 ? 4096 : 1024;
  };
  ASSERT_TRUE(server_.Start(options, [&](HttpRequest&& request, Responder respond) {
    ++calls;
    Echo(std::move(request), respond);
  }));
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("PUT", "/v1/functions/f%20x", std::string(3000, 'b'), 201)["path"],
            "/v1/functions/f x");
  auto refused = client_.Request("POST", "/v1/functions/f/invoke", std::string(3000, 'e'));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 413);
  EXPECT_THAT(refused->body, HasSubstr("request body of 3000 bytes is above the limit of 1024"));
  auto too_big = client_.Request("PUT", "/v1/functions/f", std::string(5000, 'b'));
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(calls, 1);
}

TEST_F(HttpServerTest, AnswersGarbageWith400AndCloses) {
  StartEcho();
  RawClient raw(socket_);
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.Send("\x01\x02 this is not HTTP\r\n\r\n"));
  std::string reply = raw.ReadToEnd();  // returns at EOF: the server closed the connection
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(reply, HasSubstr(R"("code":"bad_request")"));
  EXPECT_THAT(reply, HasSubstr("Connection: close"));
}

TEST_F(HttpServerTest, KeepsTheConnectionAliveAndAnswersPipelinedRequestsInOrder) {
  // The first request is answered late, the second at once: answers must still come in order.
  ASSERT_TRUE(server_.Start(Options(), [this](HttpRequest&& request, Responder respond) {
    if (request.path != "/slow") return Echo(std::move(request), respond);
    auto timer =
        std::make_shared<boost::asio::steady_timer>(server_.io(), std::chrono::milliseconds(100));
    timer->async_wait([timer, respond](boost::system::error_code) {
      respond(JsonResponse(200, R"({"path":"/slow"})"));
    });
  }));
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/one")["path"], "/one");
  EXPECT_EQ(Call("GET", "/two")["path"], "/two");
  EXPECT_EQ(server_.OpenConnections(), 1u);  // both on the client's one connection

  RawClient raw(socket_);
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(
      raw.Send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string replies = raw.ReadUntil("\"path\":", 2);
  size_t slow = replies.find("\"/slow\"");
  size_t fast = replies.find("\"/fast\"");
  ASSERT_NE(slow, std::string::npos) << replies;
  ASSERT_NE(fast, std::string::npos) << replies;
  EXPECT_LT(slow, fast);
}

TEST_F(HttpServerTest, AnswersLaterFromATimer) {
  ASSERT_TRUE(server_.Start(Options(), [this](HttpRequest&& request, Responder respond) {
    auto timer =
        std::make_shared<boost::asio::steady_timer>(server_.io(), std::chrono::milliseconds(50));
    timer->async_wait([timer, respond, body = request.body](boost::system::error_code) {
      HttpResponse response = JsonResponse(200, body);
      response.headers.emplace_back("Server-Timing", "total;dur=50");
      respond(std::move(response));
      respond(JsonError(500, "twice", "ignored"));  // a second answer is dropped
    });
  }));
  client_ = HttpClient(socket_);
  auto response = client_.Request("POST", "/v1/functions/f/invoke", R"({"late":true})");
  ASSERT_TRUE(response) << response.error().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, R"({"late":true})");
  EXPECT_EQ(response->Header("server-timing"), "total;dur=50");
  // The connection is still usable after the late answer.
  EXPECT_EQ(client_.Request("GET", "/again")->body, "");
}

TEST_F(HttpServerTest, ClientGoneWhileItsRequestIsPending) {
  std::vector<Responder> held;  // io thread only
  ASSERT_TRUE(server_.Start(Options(), [&](HttpRequest&& request, Responder respond) {
    if (request.path == "/hold") return held.push_back(std::move(respond));
    Echo(std::move(request), respond);
  }));
  {
    RawClient raw(socket_);
    ASSERT_TRUE(raw.connected());
    ASSERT_TRUE(raw.Send("POST /hold HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"));
    ASSERT_TRUE(WaitUntil([&] { return server_.OnIo([&] { return held.size(); }) > 0; }));
  }  // the client disconnects here
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server_.OnIo([&] {
    held[0](JsonResponse(200, "{}"));  // written to a closed peer: dropped
    held.clear();
  });
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/alive")["path"], "/alive");
  // Only the client's connection is left once the dropped one noticed its peer is gone.
  EXPECT_TRUE(WaitUntil([&] { return server_.OpenConnections() == 1; }));
}

TEST_F(HttpServerTest, DroppedResponderOrThrowingHandlerAnswers500) {
  ASSERT_TRUE(server_.Start(Options(), [](HttpRequest&& request, const Responder&) {
    if (request.path == "/throw") throw std::runtime_error("boom");
    // Otherwise the responder is dropped unanswered.
  }));
  client_ = HttpClient(socket_);
  auto dropped = Call("GET", "/drop", {}, 500);
  EXPECT_EQ(dropped["error"]["code"], "internal");
  auto thrown = Call("GET", "/throw", {}, 500);
  EXPECT_THAT(thrown["error"]["message"].get<std::string>(), HasSubstr("boom"));
}

TEST_F(HttpServerTest, ServesLoopbackTcpOnAnEphemeralPort) {
  HttpServerOptions options = Options();
  options.tcp_listen = "127.0.0.1:0";
  ASSERT_TRUE(server_.Start(options, Echo));
  uint16_t port = server_.server().tcp_port();
  ASSERT_NE(port, 0);
  client_ = HttpClient("http://127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(Call("GET", "/v1/healthz")["path"], "/v1/healthz");
}

TEST_F(HttpServerTest, RefusesNonLoopbackAddresses) {
  for (const char* address : {"0.0.0.0:8080", "[::]:8080", "192.0.2.1:80"}) {
    HttpServerOptions options = Options();
    options.tcp_listen = address;
    boost::asio::io_context io;
    auto server = HttpServer::Start(io, options, Echo);
    ASSERT_FALSE(server) << address;
    EXPECT_THAT(server.error().ToString(),
                HasSubstr(std::string("refusing to listen on ") + address));
    EXPECT_EQ(server.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_FALSE(PathExists(socket_)) << "no socket file is left behind";
  }
  EXPECT_THAT(ParseLoopbackAddress("127.0.0.1:http").error().ToString(), HasSubstr("port"));
  EXPECT_THAT(ParseLoopbackAddress("127.0.0.1").error().ToString(), HasSubstr("HOST:PORT"));
  EXPECT_EQ(ParseLoopbackAddress("[::1]:8080")->host, "::1");
  EXPECT_EQ(ParseLoopbackAddress("localhost:9")->host, "127.0.0.1");
  EXPECT_EQ(ParseLoopbackAddress("127.0.0.2:9")->port, 9);
}

TEST_F(HttpServerTest, CreatesTheSocket0660InA0755Directory) {
  StartEcho();
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  ASSERT_EQ(::stat((dir_.path() + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  server_.DestroyServer();
  EXPECT_FALSE(PathExists(socket_)) << "the server removes its socket";
}

TEST_F(HttpServerTest, ReplacesAStaleSocket) {
  ASSERT_TRUE(MakeDirs(dir_.path() + "/run"));
  {
    // A socket file nobody listens on: what a crashed daemon leaves.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(PathExists(socket_));
  StartEcho();
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/after-stale")["path"], "/after-stale");
}

TEST_F(HttpServerTest, RefusesALiveSocketAndAFileInTheWay) {
  StartEcho();
  boost::asio::io_context io;
  auto second = HttpServer::Start(io, Options(), Echo);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().ToString(),
            "start the HTTP API: another ember daemon is listening on " + socket_);
  // The first one is untouched.
  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/still")["path"], "/still");

  HttpServerOptions options = Options();
  options.unix_socket = dir_.path() + "/file";
  ASSERT_TRUE(WriteFileAtomic(options.unix_socket, "not a socket"));
  auto blocked = HttpServer::Start(io, options, Echo);
  ASSERT_FALSE(blocked);
  EXPECT_THAT(blocked.error().ToString(), HasSubstr("exists and is not a socket"));
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndFinishesPendingOnes) {
  std::vector<Responder> held;
  ASSERT_TRUE(server_.Start(Options(), [&](HttpRequest&& request, Responder respond) {
    if (request.path == "/hold") return held.push_back(std::move(respond));
    Echo(std::move(request), respond);
  }));
  RawClient idle(socket_);
  RawClient busy(socket_);
  ASSERT_TRUE(idle.connected() && busy.connected());
  ASSERT_TRUE(busy.Send("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(WaitUntil([&] { return server_.OnIo([&] { return held.size(); }) > 0; }));
  server_.OnIo([&] { server_.server().Stop(); });
  EXPECT_EQ(idle.ReadToEnd(), "");  // closed without a word
  EXPECT_FALSE(RawClient(socket_).connected()) << "no longer accepting";
  server_.OnIo([&] { held[0](JsonResponse(200, R"({"done":true})")); });
  std::string reply = busy.ReadToEnd();
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(reply, HasSubstr("Connection: close"));
  EXPECT_THAT(reply, HasSubstr(R"({"done":true})"));
  server_.OnIo([&] { held.clear(); });
}

TEST_F(HttpServerTest, AnswersAfterTheServerIsDestroyed) {
  std::vector<Responder> held;
  ASSERT_TRUE(server_.Start(
      Options(), [&](HttpRequest&&, Responder respond) { held.push_back(std::move(respond)); }));
  RawClient raw(socket_);
  ASSERT_TRUE(raw.Send("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(WaitUntil([&] { return server_.OnIo([&] { return held.size(); }) > 0; }));
  server_.DestroyServer();
  server_.OnIo([&] {
    held[0](JsonError(503, "shutting_down", "bye"));
    held.clear();
  });
  EXPECT_THAT(raw.ReadToEnd(), HasSubstr("shutting_down"));
}

TEST_F(HttpServerTest, ClosesIdleConnectionsAfterTheTimeoutAndTheClientReconnects) {
  HttpServerOptions options = Options();
  options.idle_timeout = std::chrono::milliseconds(100);
  ASSERT_TRUE(server_.Start(options, Echo));
  RawClient raw(socket_);
  ASSERT_TRUE(raw.connected());
  EXPECT_EQ(raw.ReadToEnd(), "");  // EOF after ~100 ms

  client_ = HttpClient(socket_);
  EXPECT_EQ(Call("GET", "/first")["path"], "/first");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The server closed the kept-alive connection meanwhile; a GET is retried on a new one.
  EXPECT_EQ(Call("GET", "/second")["path"], "/second");
}

TEST_F(HttpServerTest, SendsContinueForExpect100) {
  StartEcho();
  RawClient raw(socket_);
  ASSERT_TRUE(
      raw.Send("PUT /v1/functions/f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: "
               "100-continue\r\n\r\n"));
  EXPECT_EQ(raw.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(raw.Send("data"));
  EXPECT_THAT(raw.ReadUntil("\"data\""), HasSubstr("HTTP/1.1 201"));
}

}  // namespace
}  // namespace ember::daemon
