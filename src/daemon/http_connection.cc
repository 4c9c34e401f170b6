#include "daemon/http_connection.h"

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <exception>
#include <limits>

#include "base/log.h"

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

constexpr size_t kHeaderLimit = 64 << 10;
// After a fatal answer, what the client still sends is read and dropped for at most this long
// (or this much), so that closing does not reset the connection under the unread answer.
constexpr std::chrono::milliseconds kDrainTime{2000};
constexpr size_t kDrainLimit = 64 << 20;

// The ordinary ways for a connection to end: the peer closed or reset it, or we closed it.
bool IsDisconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Shared by the copies of one Responder: answers once, and answers 500 if every copy is dropped
// without an answer (a handler bug must not leave the client waiting forever).
class PendingReply {
 public:
  explicit PendingReply(std::shared_ptr<Connection> connection)
      : connection_(std::move(connection)) {}
  PendingReply(const PendingReply&) = delete;
  PendingReply& operator=(const PendingReply&) = delete;
  ~PendingReply() {
    if (answered_) return;
    try {
      connection_->Respond(JsonError(500, "internal", "the request was dropped without an answer"));
    } catch (...) {
      // Out of memory: the connection closes without an answer when its last reference goes.
    }
  }
  void Answer(HttpResponse response) {
    if (answered_) return;
    answered_ = true;
    connection_->Respond(std::move(response));
  }

 private:
  std::shared_ptr<Connection> connection_;
  bool answered_ = false;
};

}  // namespace

Connection::Connection(Socket socket, std::shared_ptr<HttpServer::State> state)
    : socket_(std::move(socket)), timer_(state->io), state_(std::move(state)) {}

Connection::~Connection() { state_->connections.erase(this); }

void Connection::Start() {
  state_->connections.insert(this);
  WaitForRequest();
}

void Connection::CloseIfIdle() {
  if (phase_ == Phase::kIdle) Close();
}

void Connection::Close() {
  phase_ = Phase::kClosed;
  DisarmTimer();
  error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  state_->connections.erase(this);
}

void Connection::ArmTimer(std::chrono::milliseconds timeout) {
  uint64_t generation = ++timer_generation_;
  timer_.expires_after(timeout);
  timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
    if (ec || generation != self->timer_generation_ || self->phase_ == Phase::kClosed) return;
    spdlog::debug("http: closing a connection that was silent for {} ms",
                  self->state_->options.idle_timeout.count());
    self->Close();
  });
}

void Connection::DisarmTimer() {
  ++timer_generation_;
  timer_.cancel();
}

void Connection::WaitForRequest() {
  if (state_->stopped) return Close();
  phase_ = Phase::kIdle;
  ArmTimer(state_->options.idle_timeout);
  // A pipelined request may already be buffered; otherwise wait for its first byte, so that
  // Stop() can tell an idle connection from one in the middle of a request.
  if (buffer_.size() > 0) return ReadHeader();
  socket_.async_wait(asio::socket_base::wait_read, [self = shared_from_this()](error_code ec) {
    if (self->phase_ != Phase::kIdle) return;
    if (ec) return self->Close();
    self->ReadHeader();
  });
}

void Connection::ReadHeader() {
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  // No limit while the header is read: the limit depends on the request (OnHeader). Not
  // boost::none, which Beast 1.74 compares as smaller than any Content-Length.
  parser_->body_limit(std::numeric_limits<uint64_t>::max());
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, size_t /*bytes*/) { self->OnHeader(ec); });
}

void Connection::OnHeader(error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return OnReadError(ec);
  const auto& header = parser_->get();
  body_limit_ = state_->options.max_body_bytes;
  if (state_->options.body_limit) {
    std::string_view target(header.target().data(), header.target().size());
    target = target.substr(0, target.find('?'));
    auto path = PercentDecode(target);
    body_limit_ =
        state_->options.body_limit({header.method_string().data(), header.method_string().size()},
                                   path ? *path : std::string(target));
  }
  // Refused from the Content-Length, before a byte of the body is read; a chunked body is cut
  // off by the parser as it arrives.
  if (auto length = parser_->content_length(); length && *length > body_limit_) {
    return OnReadError(http::error::body_limit);
  }
  parser_->body_limit(body_limit_);
  auto expect = header[http::field::expect];
  if (!expect.empty() && IEquals({expect.data(), expect.size()}, "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](error_code write_ec, size_t /*bytes*/) {
                        if (self->phase_ == Phase::kClosed) return;
                        if (write_ec) return self->Close();
                        self->ReadBody();
                      });
    return;
  }
  ReadBody();
}

void Connection::ReadBody() {
  if (parser_->is_done()) return OnBody({});
  http::async_read(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, size_t /*bytes*/) { self->OnBody(ec); });
}

void Connection::OnBody(error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return OnReadError(ec);

  auto message = parser_->release();
  parser_.reset();
  keep_alive_ = message.keep_alive();
  HttpRequest request;
  request.method = std::string(message.method_string());
  std::string_view target(message.target().data(), message.target().size());
  size_t question = target.find('?');
  auto path = PercentDecode(target.substr(0, question));
  auto query = question == std::string_view::npos ? decltype(ParseQuery("")){}
                                                  : ParseQuery(target.substr(question + 1));
  if (!path || !query) {
    const Error& error = !path ? path.error() : query.error();
    return Reply(JsonError(400, "invalid_request", error.ToString()), false);
  }
  request.path = std::move(*path);
  request.query = std::move(*query);
  for (const auto& field : message) {
    std::string name = Lower({field.name_string().data(), field.name_string().size()});
    std::string_view value(field.value().data(), field.value().size());
    auto [it, inserted] = request.headers.emplace(name, value);
    if (!inserted) it->second.append(", ").append(value);
  }
  request.body = std::move(message.body());
  Dispatch(std::move(request));
}

void Connection::OnReadError(error_code ec) {
  if (IsDisconnect(ec)) return Close();
  if (ec == http::error::body_limit) {
    auto length = parser_->content_length();
    std::string size = length ? "of " + std::to_string(*length) + " bytes " : "";
    return Reply(JsonError(413, "payload_too_large",
                           "request body " + size + "is above the limit of " +
                               std::to_string(body_limit_) + " bytes"),
                 true);
  }
  // http::error::partial_message is a peer that closed in the middle of a request: nobody is
  // left to read an answer.
  if (ec == http::error::partial_message) return Close();
  spdlog::debug("http: malformed request: {}", ec.message());
  Reply(JsonError(400, "bad_request", "malformed HTTP request: " + ec.message()), true);
}

void Connection::Dispatch(HttpRequest request) {
  if (!state_->handler) {
    return Reply(JsonError(503, "shutting_down", "the ember daemon is shutting down"), true);
  }
  phase_ = Phase::kHandling;
  // The handler may hold the request as long as it likes (an invocation waiting for an
  // instance); timeouts are the engine's business from here.
  DisarmTimer();
  auto pending = std::make_shared<PendingReply>(shared_from_this());
  Responder responder = [pending](HttpResponse response) { pending->Answer(std::move(response)); };
  std::string method = request.method;
  std::string path = request.path;
  try {
    state_->handler(std::move(request), responder);
  } catch (const std::exception& e) {
    spdlog::error("http: handler for {} {} threw: {}", method, path, e.what());
    responder(JsonError(500, "internal", std::string("internal error: ") + e.what()));
  } catch (...) {
    spdlog::error("http: handler for {} {} threw an unknown exception", method, path);
    responder(JsonError(500, "internal", "internal error"));
  }
}

void Connection::Respond(HttpResponse response) {
  if (phase_ != Phase::kHandling) return;  // closed meanwhile: the answer has nowhere to go
  Write(std::move(response), !keep_alive_ || state_->stopped, false);
}

void Connection::Reply(HttpResponse response, bool fatal) {
  if (fatal) keep_alive_ = false;
  Write(std::move(response), fatal || !keep_alive_ || state_->stopped, fatal);
}

void Connection::Write(HttpResponse response, bool close_after, bool drain) {
  if (!socket_.is_open()) return Close();
  phase_ = Phase::kWriting;
  response_ = std::make_shared<http::response<http::string_body>>();
  auto& out = *response_;
  out.version(11);
  out.result(static_cast<unsigned>(response.status));
  out.set(http::field::server, "ember/" EMBER_VERSION);
  if (!response.body.empty() || response.status != 204) {
    out.set(http::field::content_type, response.content_type);
  }
  for (auto& [name, value] : response.headers) out.insert(name, value);
  out.body() = std::move(response.body);
  out.keep_alive(!close_after);
  out.prepare_payload();
  ArmTimer(state_->options.idle_timeout);
  http::async_write(socket_, out,
                    [self = shared_from_this(), close_after, drain](error_code ec, size_t) {
                      self->OnWritten(ec, close_after, drain);
                    });
}

void Connection::OnWritten(error_code ec, bool close_after, bool drain) {
  response_.reset();
  if (phase_ == Phase::kClosed) return;
  if (ec) {
    if (!IsDisconnect(ec)) spdlog::debug("http: writing a response failed: {}", ec.message());
    return Close();
  }
  if (!close_after) return WaitForRequest();
  if (!drain) return Close();
  error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_send, ignored);
  drain_buffer_ = std::make_shared<std::array<char, 16384>>();
  drained_ = 0;
  ArmTimer(std::min(kDrainTime, state_->options.idle_timeout));
  Drain();
}

void Connection::Drain() {
  socket_.async_read_some(asio::buffer(*drain_buffer_),
                          [self = shared_from_this()](error_code ec, size_t bytes) {
                            if (self->phase_ == Phase::kClosed) return;
                            self->drained_ += bytes;
                            if (ec || self->drained_ > kDrainLimit) return self->Close();
                            self->Drain();
                          });
}

}  // namespace ember::daemon
