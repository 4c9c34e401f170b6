#include "engine/instance.h"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "base/log.h"
#include "base/units.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

}  // namespace

Instance::Instance(asio::io_context& io, std::string id, std::string version, Manifest manifest,
                   BootMode mode, BootedInstance booted, Hooks hooks)
    : io_(io),
      id_(std::move(id)),
      version_(std::move(version)),
      manifest_(std::move(manifest)),
      mode_(mode),
      boot_timings_(booted.timings),
      sandbox_(std::move(booted.sandbox)),
      boot_slot_(std::move(booted.boot_slot)),
      hooks_(std::move(hooks)),
      control_(io, booted.control.release()),
      log_(io),
      exit_watch_(io),
      started_(std::chrono::system_clock::now()),
      last_used_(Clock::now()),
      last_used_wall_(started_),
      awaiting_ready_(sandbox_.adopted() || booted.awaiting_ready),
      created_(Clock::now()) {
  // A forked instance has no pidfd of ours: its template reports its exit (NotifyExit).
  if (!sandbox_.adopted()) exit_watch_.assign(::dup(sandbox_.pidfd()));
  // A forked instance's output comes through its template (AppendLog).
  if (booted.log) log_.assign(booted.log.release());
  if (!booted.early_log.empty() && hooks_.on_log) hooks_.on_log(*this, booted.early_log);
}

Instance::~Instance() {
  boost::system::error_code ignored;
  control_.close(ignored);
  log_.close(ignored);
  exit_watch_.close(ignored);
}

void Instance::Start() {
  control_.non_blocking(true);
  ReadControl();
  if (log_.is_open()) {
    log_.non_blocking(true);
    ReadLog();
  }
  if (!sandbox_.adopted()) WatchExit();
}

void Instance::ReadControl() {
  control_.async_read_some(asio::buffer(control_buf_), [self = shared_from_this()](
                                                           boost::system::error_code ec, size_t n) {
    if (ec) {
      // EOF or an error: the agent is gone or going. The exit watch tells why.
      if (ec != asio::error::operation_aborted && !self->dead_) {
        (void)self->sandbox_.Signal(SIGKILL);
      }
      return;
    }
    self->reader_.Feed(self->control_buf_, n);
    for (;;) {
      auto frame = self->reader_.Next();
      if (!frame) {
        spdlog::warn("instance {}: {}", self->id_, frame.error().ToString());
        self->Kill(InvokeStatus::kCrashed, "instance " + self->id_ + " broke the agent protocol: " +
                                               frame.error().ToString());
        return;
      }
      if (!*frame) break;
      self->OnFrame(std::move(**frame));
      if (self->dead_) return;
    }
    self->ReadControl();
  });
}

void Instance::ReadLog() {
  log_.async_read_some(asio::buffer(log_buf_),
                       [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                         if (ec) return;
                         if (self->hooks_.on_log) {
                           self->hooks_.on_log(*self, std::string_view(self->log_buf_, n));
                         }
                         self->ReadLog();
                       });
}

void Instance::WatchExit() {
  exit_watch_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [self = shared_from_this()](boost::system::error_code ec) {
                           if (ec == asio::error::operation_aborted) return;
                           self->OnExit(self->sandbox_.Wait());
                         });
}

void Instance::Invoke(const std::string& request_id, std::string event, Done done) {
  uint64_t frame_id = next_frame_id_++;
  agent::InvokeRequest request{request_id, static_cast<uint64_t>(manifest_.timeout.count()),
                               std::move(event)};
  std::string bytes;
  agent::EncodeFrame(agent::FrameType::kInvoke, frame_id, agent::EncodeInvoke(request), &bytes);
  Pending pending{std::move(done), Clock::now(), std::make_unique<asio::steady_timer>(io_)};
  pending.timer->expires_after(manifest_.timeout);
  pending.timer->async_wait([weak = weak_from_this(), frame_id](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self) self->OnTimeout(frame_id);
  });
  in_flight_.emplace(frame_id, std::move(pending));
  ++invocations_;
  last_used_ = Clock::now();
  last_used_wall_ = std::chrono::system_clock::now();
  Write(std::move(bytes));
}

void Instance::Write(std::string bytes) {
  writes_.push_back(std::move(bytes));
  if (!writing_) WriteNext();
}

void Instance::WriteNext() {
  if (writes_.empty() || dead_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  asio::async_write(control_, asio::buffer(writes_.front()),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      if (ec) {
                        // The agent stopped reading (it died); the exit watch answers everyone.
                        self->writing_ = false;
                        return;
                      }
                      self->writes_.pop_front();
                      self->WriteNext();
                    });
}

void Instance::OnReady(const agent::Frame& frame) {
  if (frame.type == agent::FrameType::kReady) {
    awaiting_ready_ = false;
    boot_slot_.Release();  // the boot is over: the next one may start
    boot_timings_.init =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - created_);
    // Invocations sent before the child was ready start their handler time now.
    for (auto& [id, pending] : in_flight_) pending.sent = Clock::now();
    return;
  }
  std::string why = std::string("sent ") + agent::FrameTypeName(frame.type);
  if (frame.type == agent::FrameType::kInitFailed) {
    auto info = agent::DecodeError(frame.payload);
    why = info ? info->type + ": " + info->message : info.error().ToString();
  }
  Kill(InvokeStatus::kCrashed, std::string(BootModeName(mode_)) + " boot of instance " + id_ +
                                   " of " + manifest_.name + " failed before it was ready: " + why);
}

void Instance::OnFrame(agent::Frame frame) {
  if (awaiting_ready_) return OnReady(frame);
  InvokeResult result;
  switch (frame.type) {
    case agent::FrameType::kResult:
      result.status = InvokeStatus::kOk;
      result.body = std::move(frame.payload);
      break;
    case agent::FrameType::kError: {
      result.status = InvokeStatus::kHandlerError;
      auto info = agent::DecodeError(frame.payload);
      if (info) {
        result.error = std::move(*info);
      } else {
        result.error = {"ProtocolError", info.error().ToString(), ""};
      }
      break;
    }
    default:
      Kill(InvokeStatus::kCrashed, "instance " + id_ + " sent an unexpected " +
                                       agent::FrameTypeName(frame.type) + " frame");
      return;
  }
  if (!in_flight_.count(frame.request_id)) {
    spdlog::warn("instance {}: reply to unknown request {}", id_, frame.request_id);
    return;
  }
  Finish(frame.request_id, std::move(result));
  last_used_ = Clock::now();
  last_used_wall_ = std::chrono::system_clock::now();
  if (accepting() && hooks_.on_free) hooks_.on_free(*this);
}

void Instance::Finish(uint64_t frame_id, InvokeResult result) {
  auto it = in_flight_.find(frame_id);
  if (it == in_flight_.end()) return;
  Pending pending = std::move(it->second);
  in_flight_.erase(it);
  pending.timer->cancel();
  result.handler =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - pending.sent);
  pending.done(std::move(result));
}

void Instance::OnTimeout(uint64_t frame_id) {
  if (!in_flight_.count(frame_id)) return;
  std::string message = "function " + manifest_.name + " timed out after " +
                        FormatDuration(manifest_.timeout) + "; instance " + id_ + " was killed";
  InvokeResult result;
  result.status = InvokeStatus::kTimeout;
  result.message = message;
  Finish(frame_id, std::move(result));
  Kill(InvokeStatus::kStopped,
       "instance " + id_ + " was killed because another invocation on it timed out");
}

void Instance::Stop(const std::string& reason) { Kill(InvokeStatus::kStopped, reason); }

void Instance::Kill(InvokeStatus status, std::string reason) {
  if (dead_ || stopping_) return;
  stopping_ = true;
  kill_status_ = status;
  death_cause_ = std::move(reason);
  (void)sandbox_.Signal(SIGKILL);
}

void Instance::NotifyExit(ExitStatus status) { OnExit(status); }

void Instance::OnExit(Result<ExitStatus> status) {
  if (dead_) return;
  dead_ = true;
  boot_slot_.Release();
  auto oom = sandbox_.cgroup().OomKills();
  InvokeResult result;
  if (stopping_) {
    result.status = kill_status_;
  } else if (oom && *oom > 0) {
    result.status = InvokeStatus::kOutOfMemory;
    death_cause_ = "instance " + id_ + " of " + manifest_.name +
                   " ran out of memory and was killed (memory limit " +
                   FormatSize(manifest_.memory_bytes) + ")";
  } else {
    result.status = InvokeStatus::kCrashed;
    death_cause_ = "instance " + id_ + " of " + manifest_.name + " exited unexpectedly (" +
                   (status ? status->Describe() : status.error().ToString()) + ")";
  }
  result.message = death_cause_;
  // Answer everyone still waiting, in the order they were sent.
  while (!in_flight_.empty()) Finish(in_flight_.begin()->first, result);
  boost::system::error_code ignored;
  control_.close(ignored);
  exit_watch_.close(ignored);
  // The log pipe is drained until the last writer is gone (it closes at EOF).
  if (hooks_.on_dead) hooks_.on_dead(*this);
}

}  // namespace ember::engine
