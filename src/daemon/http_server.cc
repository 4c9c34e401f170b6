#include "daemon/http_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <cstring>

#include "base/log.h"
#include "daemon/http_connection.h"

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

constexpr std::chrono::milliseconds kAcceptRetry{100};

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument, "unix socket path '" + path + "' must be 1 to " +
                                                 std::to_string(sizeof(addr.sun_path) - 1) +
                                                 " bytes long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// True when a process accepts connections on the socket at `path`.
bool SomeoneListens(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return true;
  }
  // A full backlog (EAGAIN) is a live daemon too; ECONNREFUSED is a socket nobody serves.
  return errno == EAGAIN;
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Binds the unix socket: parent dir 0755, one daemon per path (a lock file, then a probe of an
// existing socket), a stale socket replaced, mode 0660.
Status ListenUnix(HttpServer::State& state) {
  const std::string& path = state.options.unix_socket;
  auto fail = [&](const std::string& step) { return FailErrno(step + " " + path); };
  EMBER_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  EMBER_TRY_CTX(MakeDirs(Parent(path), 0755), "create the API socket's directory");

  auto lock = FileLock::TryAcquire(path + ".lock", FileLock::Mode::kExclusive);
  if (!lock) {
    if (lock.error().code() == ErrorCode::kBusy) {
      return Fail(ErrorCode::kBusy, "another ember daemon is listening on " + path);
    }
    return Fail(std::move(lock).error().Context("lock the API socket " + path));
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Fail(ErrorCode::kAlreadyExists,
                  path + " exists and is not a socket; remove it or choose another --socket");
    }
    if (SomeoneListens(addr)) {
      return Fail(ErrorCode::kBusy, "another ember daemon is listening on " + path);
    }
    spdlog::info("replacing the stale API socket {} (nothing accepts on it)", path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail("remove the stale socket");
  } else if (errno != ENOENT) {
    return fail("stat");
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail("create a socket for");
  // Under the default umask the socket starts 0755: nobody but root can connect (connecting
  // needs write permission) until the chmod below opens it to the group.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail("bind");
  }
  if (::chmod(path.c_str(), 0660) != 0) return fail("chmod 0660");
  if (::lstat(path.c_str(), &st) == 0) state.socket_inode = st.st_ino;
  if (::listen(fd.get(), SOMAXCONN) != 0) return fail("listen on");

  state.unix_acceptor.emplace(state.io);
  error_code ec;
  (void)state.unix_acceptor->assign(asio::local::stream_protocol(), fd.get(), ec);
  if (ec) {
    return Fail(ErrorCode::kInternal, "register the socket " + path + ": " + ec.message());
  }
  (void)fd.release();
  state.socket_lock = std::move(*lock);
  return Ok();
}

Status ListenTcp(HttpServer::State& state, const std::string& text) {
  EMBER_ASSIGN_OR_RETURN(TcpListenAddress address, ParseLoopbackAddress(text));
  error_code ec;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(address.host, ec), address.port);
  auto& acceptor = state.tcp_acceptor.emplace(state.io);
  auto failed = [&](const char* step) {
    return Fail(ErrorCode::kUnavailable, std::string(step) + " " + text + ": " + ec.message());
  };
  if ((void)acceptor.open(endpoint.protocol(), ec), ec) return failed("open a socket for");
  if ((void)acceptor.set_option(asio::socket_base::reuse_address(true), ec), ec) {
    return failed("set SO_REUSEADDR on");
  }
  if ((void)acceptor.bind(endpoint, ec), ec) return failed("bind");
  if ((void)acceptor.listen(asio::socket_base::max_listen_connections, ec), ec) {
    return failed("listen on");
  }
  state.tcp_port = acceptor.local_endpoint(ec).port();
  return Ok();
}

template <typename Acceptor>
void Accept(const std::shared_ptr<HttpServer::State>& state, Acceptor& acceptor) {
  auto socket = std::make_shared<Connection::Socket>(state->io);
  acceptor.async_accept(*socket, [state, &acceptor, socket](error_code ec) {
    if (state->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of fds or memory: keep serving the connections we have and retry shortly.
      spdlog::warn("http: accept failed: {}; retrying", ec.message());
      auto timer = std::make_shared<asio::steady_timer>(state->io, kAcceptRetry);
      timer->async_wait([state, &acceptor, timer](error_code) {
        if (!state->stopped) Accept(state, acceptor);
      });
      return;
    }
    std::make_shared<Connection>(std::move(*socket), state)->Start();
    Accept(state, acceptor);
  });
}

}  // namespace

Result<TcpListenAddress> ParseLoopbackAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  auto invalid = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument, "invalid listen address '" + text + "': " + why);
  };
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return invalid("expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
  }
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  uint32_t port = 0;
  auto [end, parse_error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (parse_error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return invalid("port '" + port_text + "' is not a number from 0 to 65535");
  }
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return invalid("'" + host + "' is not an IP address");
  if (!address.is_loopback()) {
    return Fail(ErrorCode::kInvalidArgument,
                "refusing to listen on " + text +
                    ": the API has no authentication, so only loopback addresses are allowed "
                    "(127.0.0.1:PORT or [::1]:PORT); reach it remotely through an SSH tunnel");
  }
  return TcpListenAddress{address.to_string(), static_cast<uint16_t>(port)};
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io,
                                                      HttpServerOptions options, Handler handler) {
  std::optional<std::string> tcp = options.tcp_listen;
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  // TCP first: a refused address must not leave a socket file behind.
  if (tcp) EMBER_TRY_CTX(ListenTcp(*state, *tcp), "start the HTTP API");
  EMBER_TRY_CTX(ListenUnix(*state), "start the HTTP API");
  std::unique_ptr<HttpServer> server(new HttpServer(state));
  Accept(state, *state->unix_acceptor);
  if (state->tcp_acceptor) Accept(state, *state->tcp_acceptor);
  return server;
}

HttpServer::HttpServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

HttpServer::~HttpServer() {
  Stop();
  state_->handler = nullptr;
  // Remove the socket only if it is still ours (its inode); the lock file stays, it is reused.
  struct stat st {};
  const std::string& path = state_->options.unix_socket;
  if (::lstat(path.c_str(), &st) == 0 && st.st_ino == state_->socket_inode) ::unlink(path.c_str());
  state_->socket_lock.Release();
}

void HttpServer::Stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  error_code ignored;
  if (state_->unix_acceptor) (void)state_->unix_acceptor->close(ignored);
  if (state_->tcp_acceptor) (void)state_->tcp_acceptor->close(ignored);
  // Closing erases from the set; iterate over a snapshot.
  std::vector<Connection*> connections(state_->connections.begin(), state_->connections.end());
  for (Connection* connection : connections) connection->CloseIfIdle();
}

uint16_t HttpServer::tcp_port() const { return state_->tcp_port; }
const std::string& HttpServer::unix_socket() const { return state_->options.unix_socket; }
size_t HttpServer::open_connections() const { return state_->connections.size(); }

}  // namespace ember::daemon
