// A small synchronous HTTP/1.1 client for the daemon's API (Boost.Beast), used by the CLI.
// It talks to a unix socket path or to "http://127.0.0.1:PORT", keeps its connection open
// between requests (ember logs -f polls on one connection) and reconnects once when the daemon
// closed an idle keep-alive connection. When the daemon cannot be reached the error says so:
//   cannot reach the ember daemon at /run/ember/ember.sock: ENOENT (is `ember daemon` running?
//   start it, or set --socket / EMBER_SOCKET)
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "daemon/http_message.h"

namespace ember::daemon {

class HttpClient {
 public:
  // `address`: a unix socket path, or http://HOST:PORT. Nothing is connected until Request.
  explicit HttpClient(std::string address);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // Sends one request and reads the whole response, whatever its status (a 404 is a response,
  // not an error). Errors are transport failures: the daemon unreachable (kUnavailable, or
  // kPermissionDenied), no answer within `timeout` (kTimeout; zero waits forever), a response
  // that is not HTTP (kIo). `target` is the path and query, already percent-encoded
  // (PercentEncode each path segment and query value). `headers` are extra request headers.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string_view body = {}, std::string_view content_type = {},
                               const std::vector<std::pair<std::string, std::string>>& headers = {},
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  const std::string& address() const { return address_; }

 private:
  struct Connection;
  std::string address_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace ember::daemon
