// The daemon's HTTP/1.1 server (Boost.Beast), on a unix socket and optionally on loopback TCP.
//
// Everything runs on the caller's io_context thread: connections, the handler, the responses.
// A request is read completely (headers, then a body within its limit), decoded into an
// HttpRequest and given to the handler together with a Responder. The handler may answer at once
// or much later (an invocation that waits for an instance): the connection stays open, and the
// next request on it (keep-alive, pipelining) is read only once the answer is written, so
// answers go out in request order. What the server answers itself, without the handler:
//   400 malformed HTTP or a bad percent-escape (the connection is closed after a parse error),
//   413 a body above its limit (from Content-Length, before the body is read; or while
//       reading a chunked body), 503 a request that completes after the server was destroyed,
//   500 when the handler drops its Responder without calling it, or throws.
// A client that disconnects while its request is pending costs nothing: the answer is dropped
// when it comes. No exception from Beast or Asio leaves this file.
//
// The unix socket is created with mode 0660 in a 0755 parent directory. A socket file that no
// process accepts on (a daemon that crashed) is replaced; a live one is an error, so two daemons
// never share a socket. TCP is refused on anything but loopback: the API has no authentication.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "daemon/http_message.h"

namespace ember::daemon {

// Answers one request. Call it exactly once, on the io thread, now or later; later calls are
// ignored. Dropping it uncalled answers 500.
using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest&&, Responder)>;

struct HttpServerOptions {
  std::string unix_socket;                // path; required
  std::optional<std::string> tcp_listen;  // "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT"
  size_t max_body_bytes = 6 << 20;
  // The body limit of one request, from its method and percent-decoded path, when requests
  // differ (a deploy's bundle may be far larger than an event). Unset: max_body_bytes for all.
  // Either way a body above its limit is refused from the Content-Length, before it is read.
  std::function<uint64_t(std::string_view method, const std::string& path)> body_limit;
  // How long a connection may sit between requests, or take to send one or to read an answer.
  // A request the handler holds is never timed out here (the engine has its own timeouts).
  std::chrono::milliseconds idle_timeout{60000};
};

class HttpServer {
 public:
  // Binds and starts accepting. Errors name the socket and the cause ("another ember daemon is
  // listening on PATH", "refusing to listen on 0.0.0.0:80: ...").
  static Result<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                   HttpServerOptions options, Handler handler);
  // Stops, closes idle connections and removes the socket file. In-flight requests are still
  // answered, but the handler is never called again.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound TCP port (useful with port 0), or 0 without TCP.
  uint16_t tcp_port() const;
  const std::string& unix_socket() const;

  // Stops accepting and closes idle connections; requests already being read or handled are
  // finished and answered, then their connections close. Idempotent.
  void Stop();

  // Connections currently open (idle, reading, waiting for the handler or writing).
  size_t open_connections() const;

  struct State;  // shared with the connections, which may outlive the server

 private:
  explicit HttpServer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Parses a --listen address: "127.0.0.1:8080", "[::1]:8080" or "localhost:8080". Anything that
// is not a loopback address is refused with the reason.
struct TcpListenAddress {
  std::string host;  // numeric
  uint16_t port = 0;
};
Result<TcpListenAddress> ParseLoopbackAddress(const std::string& text);

}  // namespace ember::daemon
