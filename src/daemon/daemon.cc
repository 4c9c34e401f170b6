#include "daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "base/fs.h"
#include "base/log.h"
#include "daemon/api.h"
#include "daemon/http_server.h"
#include "daemon/metrics.h"
#include "engine/bundle.h"

namespace ember::daemon {
namespace {

namespace asio = boost::asio;

Status CopyFileAtomic(const std::string& from, const std::string& to, mode_t mode) {
  EMBER_ASSIGN_OR_RETURN(std::string bytes, ReadFile(from));
  EMBER_TRY(WriteFileAtomic(to, bytes, mode));
  return Ok();
}

}  // namespace

Result<std::string> InstallAgent(const std::string& from_dir, const std::string& run_dir) {
  std::string dir = run_dir + "/agent";
  EMBER_TRY(MakeDirs(dir));
  ::chmod(dir.c_str(), 0755);
  for (const char* file : {"ember-agent", "ember-python.so", "ember-restore"}) {
    std::string from = from_dir + "/" + file;
    if (!PathExists(from)) {
      return Fail(ErrorCode::kNotFound, "install the agent: " + from +
                                            " is missing (build ember-agent, or pass --agent-dir)");
    }
    EMBER_TRY_CTX(CopyFileAtomic(from, dir + "/" + file, 0755), "install the agent");
  }
  return dir;
}

Status RunDaemon(const DaemonOptions& options) {
  const std::string& data_dir = options.engine.launcher.data_dir;
  EMBER_TRY(MakeDirs(data_dir));
  // One daemon per data dir: two would boot instances from, and rewrite, the same state.
  EMBER_ASSIGN_OR_RETURN(
      auto lock, FileLock::TryAcquire(data_dir + "/daemon.lock", FileLock::Mode::kExclusive)
                     .map_error([&](Error e) {
                       return std::move(e).Context("another ember daemon is using " + data_dir);
                     }));
  ::signal(SIGPIPE, SIG_IGN);
  asio::io_context io(1);
  MetricsRegistry metrics;
  EMBER_ASSIGN_OR_RETURN(auto engine, engine::Engine::Create(io, options.engine, &metrics));
  Api api(engine.get(), &metrics);
  HttpServerOptions server_options;
  server_options.unix_socket = options.socket;
  server_options.tcp_listen = options.listen;
  // A deploy carries the bundle; everything else at most an event.
  server_options.max_body_bytes = kMaxEventBytes;
  server_options.body_limit = [](std::string_view method, const std::string& path) -> uint64_t {
    bool deploy = method == "PUT" && path.rfind("/v1/functions/", 0) == 0;
    return deploy ? engine::kMaxBundleTarBytes : kMaxEventBytes;
  };
  EMBER_ASSIGN_OR_RETURN(
      auto server,
      HttpServer::Start(io, server_options, [&api](HttpRequest&& request, Responder respond) {
        api.Handle(std::move(request), std::move(respond));
      }));
  std::fprintf(stderr, "ember daemon: listening on %s%s (data %s, run %s)\n",
               options.socket.c_str(),
               options.listen ? (" and http://" + *options.listen).c_str() : "", data_dir.c_str(),
               options.engine.launcher.run_dir.c_str());

  asio::signal_set signals(io, SIGTERM, SIGINT);
  bool stopping = false;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (stopping) {
        spdlog::warn("second {}: stopping now", sigabbrev_np(sig));
        io.stop();
        return;
      }
      stopping = true;
      std::fprintf(stderr, "ember daemon: SIG%s: finishing invocations in flight (up to %llds)\n",
                   sigabbrev_np(sig),
                   static_cast<long long>(options.shutdown_grace.count() / 1000));
      server->Stop();
      engine->Shutdown(options.shutdown_grace, [&] {
        signals.cancel();
        io.stop();
      });
      wait_signal();
    });
  };
  wait_signal();
  io.run();
  server.reset();
  engine.reset();
  std::fprintf(stderr, "ember daemon: stopped\n");
  return Ok();
}

}  // namespace ember::daemon
