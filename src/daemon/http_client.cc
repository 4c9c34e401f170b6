#include "daemon/http_client.h"

#include <sys/un.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <limits>
#include <optional>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using Socket = asio::generic::stream_protocol::socket;
using Endpoint = asio::generic::stream_protocol::endpoint;

constexpr std::string_view kHttpPrefix = "http://";

Result<Endpoint> ResolveAddress(const std::string& address) {
  if (address.rfind(kHttpPrefix, 0) != 0) {
    if (address.size() >= sizeof(sockaddr_un::sun_path)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "the daemon socket path '" + address + "' is too long for a unix socket");
    }
    return Endpoint(asio::local::stream_protocol::endpoint(address));
  }
  std::string host_port = address.substr(kHttpPrefix.size());
  while (!host_port.empty() && host_port.back() == '/') host_port.pop_back();
  size_t colon = host_port.rfind(':');
  auto invalid = [&] {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid daemon address '" + address + "': expected http://127.0.0.1:PORT");
  };
  if (colon == std::string::npos) return invalid();
  std::string host = host_port.substr(0, colon);
  std::string port_text = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  uint16_t port = 0;
  auto [end, parse_error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (parse_error != std::errc() || end != port_text.data() + port_text.size() || port == 0) {
    return invalid();
  }
  error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return invalid();
  return Endpoint(asio::ip::tcp::endpoint(ip, port));
}

// What most often goes wrong, said in the message itself.
std::string HintFor(int sys_errno) {
  switch (sys_errno) {
    case ENOENT:
    case ECONNREFUSED:
      return "is `ember daemon` running? start it, or set --socket / EMBER_SOCKET";
    case EACCES:
    case EPERM:
      return "the socket is 0660 root: run as root or as a member of its group";
    default:
      return "";
  }
}

// Runs `io` until `done` or the deadline; on the deadline closes `socket` (which cancels what
// is pending) and lets the cancelled handlers run. Returns false on timeout.
bool RunUntil(asio::io_context& io, Socket& socket, const bool& done,
              std::chrono::milliseconds timeout) {
  io.restart();
  if (timeout.count() > 0) {
    io.run_for(timeout);
  } else {
    io.run();
  }
  if (done) return true;
  error_code ignored;
  socket.close(ignored);
  io.restart();
  io.run();
  return false;
}

bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE";
}

}  // namespace

struct HttpClient::Connection {
  asio::io_context io;
  Socket socket{io};
  boost::beast::flat_buffer buffer;
  bool used = false;  // has served a request: the daemon may have closed it since
};

HttpClient::HttpClient(std::string address) : address_(std::move(address)) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Result<HttpResponse> HttpClient::Request(
    std::string_view method, std::string_view target, std::string_view body,
    std::string_view content_type, const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout) {
  http::request<http::string_body> request;
  request.version(11);
  request.method_string({method.data(), method.size()});
  request.target({target.data(), target.size()});
  request.set(http::field::host, "localhost");
  request.set(http::field::user_agent, "ember/" EMBER_VERSION);
  if (!content_type.empty()) {
    request.set(http::field::content_type, {content_type.data(), content_type.size()});
  }
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = std::string(body);
  request.keep_alive(true);
  request.prepare_payload();

  std::string what = std::string(method) + " " + std::string(target);
  for (int attempt = 0;; ++attempt) {
    bool reused = connection_ && connection_->socket.is_open() && connection_->used;
    if (!connection_ || !connection_->socket.is_open()) {
      connection_ = std::make_unique<Connection>();
      EMBER_ASSIGN_OR_RETURN(Endpoint endpoint, ResolveAddress(address_));
      bool done = false;
      error_code connect_ec;
      connection_->socket.async_connect(endpoint, [&](error_code ec) {
        connect_ec = ec;
        done = true;
      });
      if (!RunUntil(connection_->io, connection_->socket, done, timeout)) {
        connection_.reset();
        return Fail(ErrorCode::kTimeout, "cannot reach the ember daemon at " + address_ +
                                             ": no connection within " +
                                             std::to_string(timeout.count()) + " ms");
      }
      if (connect_ec) {
        int sys_errno = connect_ec.value();
        connection_.reset();
        // Not kNotFound for ENOENT: what is missing is a running daemon, not something the
        // user named.
        ErrorCode code = sys_errno == EACCES || sys_errno == EPERM ? ErrorCode::kPermissionDenied
                                                                   : ErrorCode::kUnavailable;
        Error error(code, "cannot reach the ember daemon at " + address_, sys_errno);
        std::string hint = HintFor(sys_errno);
        return Fail(hint.empty() ? std::move(error) : std::move(error).WithHint(hint));
      }
    }

    Connection& c = *connection_;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<uint64_t>::max());
    bool done = false;
    bool wrote = false;
    error_code result;
    http::async_write(c.socket, request, [&](error_code write_ec, size_t) {
      if (write_ec) {
        result = write_ec;
        done = true;
        return;
      }
      wrote = true;
      http::async_read(c.socket, c.buffer, parser, [&](error_code read_ec, size_t) {
        result = read_ec;
        done = true;
      });
    });
    if (!RunUntil(c.io, c.socket, done, timeout)) {
      connection_.reset();
      return Fail(ErrorCode::kTimeout, "no answer from the ember daemon at " + address_ + " to " +
                                           what + " within " + std::to_string(timeout.count()) +
                                           " ms");
    }
    if (result) {
      bool nothing_received = !wrote || !parser.got_some();
      connection_.reset();
      // A keep-alive connection the daemon closed while we were idle: the request never
      // reached it, so sending it again on a fresh connection is safe.
      if (reused && nothing_received && attempt == 0 && IsIdempotent(method)) continue;
      if (result == http::error::end_of_stream || result == asio::error::eof ||
          result == asio::error::connection_reset || result == asio::error::broken_pipe) {
        return Fail(ErrorCode::kUnavailable, "the ember daemon at " + address_ +
                                                 " closed the connection before answering " + what +
                                                 " (did it stop or crash?)");
      }
      return Fail(ErrorCode::kIo, "the ember daemon at " + address_ + " sent no valid answer to " +
                                      what + ": " + result.message());
    }
    c.used = true;
    auto message = parser.release();
    HttpResponse response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      std::string name(field.name_string().data(), field.name_string().size());
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      response.headers.emplace_back(std::move(name),
                                    std::string(field.value().data(), field.value().size()));
    }
    response.content_type = response.Header("content-type").value_or("");
    response.body = std::move(message.body());
    if (!message.keep_alive()) connection_.reset();
    return response;
  }
}

}  // namespace ember::daemon
