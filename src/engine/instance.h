// A live instance as the engine sees it, on the io thread: the sandbox booted by the Launcher,
// the agent's socket (framed protocol, read and written asynchronously), the instance's log
// pipe, and a watch on its pid 1 so that a crash or an OOM kill is noticed at once and every
// invocation in flight gets an answer naming the cause.
//
// Not thread-safe: every method runs on the io thread that owns the engine.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/protocol.h"
#include "engine/boot_mode.h"
#include "engine/launcher.h"
#include "engine/manifest.h"

namespace ember::engine {

enum class InvokeStatus {
  kOk,            // body holds the handler's result (JSON)
  kHandlerError,  // the handler raised / returned an error: `error` says what
  kCrashed,       // the instance died (exit, signal, killed its agent): `message` names the cause
  kOutOfMemory,   // the instance was OOM-killed
  kTimeout,       // the handler ran past the function's timeout; the instance was killed
  kStopped,       // the instance was stopped (deleted, redeployed, daemon shutting down)
};

struct InvokeResult {
  InvokeStatus status = InvokeStatus::kOk;
  std::string body;
  agent::ErrorInfo error;
  std::string message;
  std::chrono::microseconds handler{0};
};

class Instance : public std::enable_shared_from_this<Instance> {
 public:
  using Done = std::function<void(InvokeResult)>;
  struct Hooks {
    std::function<void(Instance&)> on_free;                   // can take another invocation
    std::function<void(Instance&)> on_dead;                   // pid 1 is gone; all answered
    std::function<void(Instance&, std::string_view)> on_log;  // output of the instance
  };

  Instance(boost::asio::io_context& io, std::string id, std::string version, Manifest manifest,
           BootMode mode, BootedInstance booted, Hooks hooks);
  ~Instance();

  // Starts reading the socket, the log and the exit watch. Call once, right after construction.
  void Start();

  bool alive() const { return !dead_; }
  bool stopping() const { return stopping_ || dead_; }
  bool accepting() const {
    return !dead_ && !stopping_ && in_flight_.size() < manifest_.concurrency;
  }
  size_t in_flight() const { return in_flight_.size(); }
  const std::string& id() const { return id_; }
  const std::string& version() const { return version_; }
  const Manifest& manifest() const { return manifest_; }
  BootMode boot_mode() const { return mode_; }
  const BootTimings& boot_timings() const { return boot_timings_; }
  pid_t pid() const { return sandbox_.pid(); }
  uint64_t invocations() const { return invocations_; }
  std::chrono::system_clock::time_point started() const { return started_; }
  std::chrono::steady_clock::time_point last_used() const { return last_used_; }
  std::chrono::system_clock::time_point last_used_wall() const { return last_used_wall_; }
  // Why it died or was stopped ("" while alive).
  const std::string& death_cause() const { return death_cause_; }

  void Invoke(const std::string& request_id, std::string event, Done done);
  // A fork-boot instance's exit, reported by its template (which reaps it).
  void NotifyExit(ExitStatus status);
  // Output of a fork-boot instance, which its template's shared log socket attributed to it (such
  // an instance has no log pipe of its own).
  void AppendLog(std::string_view text) {
    if (hooks_.on_log) hooks_.on_log(*this, text);
  }
  // Fork boot: false until the child reported that it is sandboxed and ready. Invocations may
  // be sent before (the child reads them after); boot_timings().init is final once it is.
  bool ready() const { return !awaiting_ready_; }
  // Kills the instance; invocations in flight are answered with kStopped and `reason`.
  void Stop(const std::string& reason);
  // After on_dead: hands the (exited) sandbox over for teardown off the io thread.
  sandbox::Sandbox TakeSandbox() { return std::move(sandbox_); }

 private:
  struct Pending {
    Done done;
    std::chrono::steady_clock::time_point sent;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  void ReadControl();
  void ReadLog();
  void WatchExit();
  void OnFrame(agent::Frame frame);
  void Write(std::string bytes);
  void WriteNext();
  void OnTimeout(uint64_t frame_id);
  void Kill(InvokeStatus status, std::string reason);
  void OnExit(Result<ExitStatus> status);
  void OnReady(const agent::Frame& frame);
  void Finish(uint64_t frame_id, InvokeResult result);

  boost::asio::io_context& io_;
  std::string id_;
  std::string version_;
  Manifest manifest_;
  BootMode mode_;
  BootTimings boot_timings_;
  sandbox::Sandbox sandbox_;
  BootSlot boot_slot_;  // a fork boot's, until its child is ready or dead
  Hooks hooks_;
  boost::asio::posix::stream_descriptor control_;
  boost::asio::posix::stream_descriptor log_;
  boost::asio::posix::stream_descriptor exit_watch_;  // a dup of the pidfd
  agent::FrameReader reader_;
  char control_buf_[65536];
  char log_buf_[65536];
  std::deque<std::string> writes_;
  bool writing_ = false;

  uint64_t next_frame_id_ = 1;
  std::map<uint64_t, Pending> in_flight_;
  uint64_t invocations_ = 0;
  std::chrono::system_clock::time_point started_;
  std::chrono::steady_clock::time_point last_used_;
  std::chrono::system_clock::time_point last_used_wall_;
  bool stopping_ = false;
  bool dead_ = false;
  bool awaiting_ready_ = false;
  std::chrono::steady_clock::time_point created_;
  // Set when ember killed it on purpose: the status and reason every pending invocation gets.
  InvokeStatus kill_status_ = InvokeStatus::kCrashed;
  std::string death_cause_;
};

}  // namespace ember::engine
