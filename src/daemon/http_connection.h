// Internal to the HTTP server: one accepted connection and the state it shares with the server.
// A connection serves its requests one at a time (read, hand to the handler, write the answer,
// read the next), which is what keeps pipelined answers in order.
#pragma once

#include <array>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <optional>
#include <unordered_set>

#include "base/fs.h"
#include "daemon/http_server.h"

namespace ember::daemon {

class Connection;

// Owned jointly by the server and its connections: a connection that is still answering a
// request when the server is destroyed keeps this alive, and finds `handler` empty.
struct HttpServer::State {
  State(boost::asio::io_context& io_context, HttpServerOptions opts, Handler h)
      : io(io_context), options(std::move(opts)), handler(std::move(h)) {}

  boost::asio::io_context& io;
  HttpServerOptions options;
  Handler handler;  // empty once the server is destroyed
  std::optional<boost::asio::local::stream_protocol::acceptor> unix_acceptor;
  std::optional<boost::asio::ip::tcp::acceptor> tcp_acceptor;
  uint16_t tcp_port = 0;
  FileLock socket_lock;  // PATH.lock: one daemon per socket, even when two start at once
  ino_t socket_inode = 0;
  bool stopped = false;
  std::unordered_set<Connection*> connections;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  Connection(Socket socket, std::shared_ptr<HttpServer::State> state);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Closes the connection if it is waiting for a new request (Stop).
  void CloseIfIdle();
  void Close();
  // Called through the Responder; ignored unless a request is with the handler.
  void Respond(HttpResponse response);

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kClosed };

  void WaitForRequest();
  void ReadHeader();
  void OnHeader(boost::system::error_code ec);
  void ReadBody();
  void OnBody(boost::system::error_code ec);
  void Dispatch(HttpRequest request);
  // Answers without the handler. `fatal` closes the connection afterwards, after draining what
  // the client still sends so that it reads the answer instead of a reset.
  void Reply(HttpResponse response, bool fatal);
  void Write(HttpResponse response, bool close_after, bool drain);
  void OnWritten(boost::system::error_code ec, bool close_after, bool drain);
  void Drain();
  // A read error: a quiet close for the ordinary ends (EOF, reset, timeout), 400 otherwise.
  void OnReadError(boost::system::error_code ec);
  void ArmTimer(std::chrono::milliseconds timeout);
  void DisarmTimer();

  Socket socket_;
  boost::asio::steady_timer timer_;
  uint64_t timer_generation_ = 0;  // tells a stale expiry from the current one
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<boost::beast::http::response<boost::beast::http::string_body>> response_;
  std::shared_ptr<std::array<char, 16384>> drain_buffer_;
  size_t drained_ = 0;
  uint64_t body_limit_ = 0;  // of the request being read
  Phase phase_ = Phase::kIdle;
  bool keep_alive_ = true;
  std::shared_ptr<HttpServer::State> state_;
};

}  // namespace ember::daemon
