// Test helpers for the HTTP layer (header-only, used by *_test.cc): a temp dir, an HttpServer
// running its io_context on a thread of its own (so the synchronous HttpClient can talk to it from
// the test's thread), and a raw unix-socket client for bytes no well-behaved client sends.
#pragma once

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "daemon/http_server.h"

namespace ember::daemon::testing {

class ScratchDir {
 public:
  ScratchDir() {
    char pattern[] = "/tmp/ember-http-test-XXXXXX";
    path_ = ::mkdtemp(pattern) != nullptr ? pattern : "";
  }
  ~ScratchDir() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An HttpServer on its own io thread. Everything touching the server or a Responder must run on
// that thread: use OnIo.
class ServerThread {
 public:
  ServerThread() : work_(boost::asio::make_work_guard(io_)) {}
  ~ServerThread() {
    if (thread_.joinable()) {
      OnIo([this] { server_.reset(); });
      work_.reset();
      io_.stop();
      thread_.join();
    }
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  Status Start(HttpServerOptions options, Handler handler) {
    EMBER_ASSIGN_OR_RETURN(server_, HttpServer::Start(io_, std::move(options), std::move(handler)));
    thread_ = std::thread([this] { io_.run(); });
    return Ok();
  }

  // Runs `fn` on the io thread and waits for its result.
  template <typename Fn>
  auto OnIo(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  HttpServer& server() { return *server_; }
  void DestroyServer() {
    OnIo([this] { server_.reset(); });
  }
  size_t OpenConnections() {
    return OnIo([this] { return server_->open_connections(); });
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// A blocking unix-socket connection with a receive timeout, so a broken server fails the test
// instead of hanging it.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) fd_.reset();
    timeval tv{10, 0};
    if (fd_) ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  bool connected() const { return fd_.valid(); }
  bool Send(const std::string& bytes) {
    return ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Reads until the peer closes (or the timeout): everything the server sent.
  std::string ReadToEnd() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // Reads until `count` occurrences of `marker` have arrived (or EOF / timeout).
  std::string ReadUntil(const std::string& marker, int count = 1) {
    std::string out;
    char buf[4096];
    auto occurrences = [&] {
      int found = 0;
      for (size_t pos = out.find(marker); pos != std::string::npos;
           pos = out.find(marker, pos + 1)) {
        ++found;
      }
      return found;
    };
    while (occurrences() < count) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void Close() { fd_.reset(); }

 private:
  UniqueFd fd_;
};

}  // namespace ember::daemon::testing
