#include "agent/agent_loop.h"

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>

#include "agent/invocation_pool.h"
#include "agent/protocol_json.h"
#include "agent/runtime.h"
#include "agent/template_loop.h"

namespace ember::agent {
namespace {

// Error fields are capped so that any error fits in a frame; a traceback keeps its end, where
// the exception is.
constexpr size_t kMaxErrorType = 256;
constexpr size_t kMaxErrorMessage = 64u << 10;
constexpr size_t kMaxTraceback = 1u << 20;

ErrorInfo ClampError(ErrorInfo error) {
  if (error.type.size() > kMaxErrorType) error.type.resize(kMaxErrorType);
  if (error.message.size() > kMaxErrorMessage) {
    error.message.resize(kMaxErrorMessage);
    error.message += "... (truncated)";
  }
  if (error.traceback.size() > kMaxTraceback) {
    error.traceback =
        "... (truncated)\n" + error.traceback.substr(error.traceback.size() - kMaxTraceback);
  }
  return error;
}

std::string JsonString(const std::string& text) { return detail::DumpJson(nlohmann::json(text)); }

void Complain(const std::string& message) {
  std::fprintf(stderr, "ember-agent: %s\n", message.c_str());
}

class Agent {
 public:
  explicit Agent(int fd) : fd_(fd) {}
  int Run();

 private:
  // The handshake up to an initialized runtime; the exit code when the agent cannot go on.
  std::optional<int> Start();
  // A template: reports whether it can fork, then serves spawns. Returns in a forked child
  // (nullopt: go on serving as an instance) or with the template's exit code.
  std::optional<int> ServeAsTemplate();
  int Serve();
  // The first frame of a restored instance: its identity and the runtime's after-fork hooks.
  // The exit code when the instance cannot serve.
  std::optional<int> AfterRestore(const Frame& frame);
  // Decodes, invokes and answers one kInvoke frame. Thread-safe.
  void Handle(const Frame& frame);
  void SendError(FrameType type, uint64_t id, ErrorInfo error);
  void Reply(FrameType type, uint64_t id, std::string_view payload);
  // Ends the agent with `code` once the main thread notices; the first code recorded wins.
  void RecordStop(int code);
  // RecordStop, then wakes the main thread if it is blocked reading the next frame.
  void Stop(int code);

  int fd_;
  InitRequest init_;
  uint64_t ready_id_ = 0;  // the init frame's request id
  int64_t init_us_ = 0;
  std::unique_ptr<Runtime> runtime_;
  std::optional<InvocationPool> pool_;  // concurrency > 1 only
  std::mutex write_mutex_;              // one reply on the socket at a time
  std::atomic<int> stop_code_{-1};
};

int Agent::Run() {
  if (auto code = Start()) return *code;
  if (!init_.template_spec.empty()) {
    if (auto code = ServeAsTemplate()) return *code;
  }
  return Serve();
}

std::optional<int> Agent::ServeAsTemplate() {
  std::string refusal = TemplateRefusal(*runtime_);
  std::string ready = "{\"init_us\":" + std::to_string(init_us_) + ",\"fork\":";
  if (!refusal.empty()) {
    // The daemon stops a template that cannot fork; it never serves invocations, since its
    // sandbox kept the capabilities a template needs.
    Reply(FrameType::kReady, ready_id_, ready + "false,\"refused\":" + JsonString(refusal) + "}");
    while (ReadFrame(fd_)) {
    }
    return kExitUnusable;
  }
  Reply(FrameType::kReady, ready_id_, ready + "true}");
  TemplateOutcome outcome = RunTemplate(fd_, *runtime_, init_);
  if (outcome.exit_code) return outcome.exit_code;
  // A forked child, sandboxed, with its own socket on fd 3: the daemon learns it is ready here.
  Reply(FrameType::kReady, 0, "{\"instance_id\":" + JsonString(outcome.instance_id) + "}");
  return std::nullopt;
}

std::optional<int> Agent::Start() {
  auto frame = ReadFrame(fd_);
  if (!frame) {
    Complain(frame.error().code() == ErrorCode::kNotFound
                 ? "the connection closed before the init frame"
                 : "reading the init frame: " + frame.error().ToString());
    return kExitBadStart;
  }
  if (frame->type != FrameType::kInit) {
    Complain(std::string("protocol error: expected an init frame first, got ") +
             FrameTypeName(frame->type));
    return kExitBadStart;
  }
  auto init = DecodeInit(frame->payload);
  if (!init) {
    Complain("protocol error: " + init.error().ToString());
    SendError(FrameType::kInitFailed, frame->request_id,
              MakeError("InvalidInit", init.error().message()));
    return kExitBadStart;
  }
  init_ = std::move(*init);

  auto start = std::chrono::steady_clock::now();
  auto runtime = MakeRuntime(init_.runtime);
  if (!runtime) {
    SendError(FrameType::kInitFailed, frame->request_id, std::move(runtime).error());
    return kExitUnusable;
  }
  runtime_ = std::move(*runtime);
  if (auto loaded = runtime_->Init(init_); !loaded) {
    SendError(FrameType::kInitFailed, frame->request_id, std::move(loaded).error());
    return kExitUnusable;
  }
  if (!init_.warmup_event.empty()) {
    auto warm = runtime_->Invoke(InvokeRequest{"warmup", init_.timeout_ms, init_.warmup_event});
    if (!warm) {
      ErrorInfo error = std::move(warm).error();
      error.message = "warmup event failed: " + error.message;
      SendError(FrameType::kInitFailed, frame->request_id, std::move(error));
      return kExitUnusable;
    }
  }
  init_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now() - start)
                 .count();
  ready_id_ = frame->request_id;
  if (init_.template_spec.empty()) {
    Reply(FrameType::kReady, ready_id_, "{\"init_us\":" + std::to_string(init_us_) + "}");
  }
  if (stop_code_ >= 0) return stop_code_.load();
  return std::nullopt;
}

int Agent::Serve() {
  if (init_.concurrency > 1) {
    pool_.emplace(init_.concurrency, [this](const Frame& frame) { Handle(frame); });
  }
  for (;;) {
    if (stop_code_ >= 0) return stop_code_;
    auto frame = ReadFrame(fd_);
    if (!frame) {
      if (stop_code_ >= 0) return stop_code_;  // Stop() shut the socket down to wake us
      if (frame.error().code() == ErrorCode::kNotFound) return kExitClosed;
      Complain("protocol error: " + frame.error().ToString());
      return kExitProtocolError;
    }
    if (frame->type == FrameType::kRestored) {
      if (auto code = AfterRestore(*frame)) return *code;
      continue;
    }
    if (frame->type != FrameType::kInvoke) {
      Complain(std::string("protocol error: unexpected ") + FrameTypeName(frame->type) +
               " frame (request id " + std::to_string(frame->request_id) + ") after init");
      return kExitProtocolError;
    }
    if (pool_) {
      pool_->Submit(std::move(*frame));
    } else {
      Handle(*frame);
    }
  }
}

std::optional<int> Agent::AfterRestore(const Frame& frame) {
  auto object = detail::ParseObject(frame.payload, "restored frame");
  auto id = object ? detail::GetString(*object, "instance_id", true, "restored frame")
                   : Result<std::string>(tl::unexpected(object.error()));
  if (!id || id->empty()) {
    SendError(FrameType::kInitFailed, frame.request_id,
              MakeError("InvalidRestore",
                        id ? "restored frame: empty instance_id" : id.error().message()));
    return kExitProtocolError;
  }
  const std::string& instance_id = *id;
  ::setenv("EMBER_INSTANCE", instance_id.c_str(), 1);
  if (auto ready = runtime_->AfterRestore(instance_id); !ready) {
    SendError(FrameType::kInitFailed, frame.request_id, std::move(ready).error());
    return kExitUnusable;
  }
  Reply(FrameType::kReady, frame.request_id, "{\"instance_id\":" + JsonString(instance_id) + "}");
  return std::nullopt;
}

void Agent::Handle(const Frame& frame) {
  auto request = DecodeInvoke(frame.payload);
  if (!request) {
    // The framing is intact, so only this request is lost; the daemon gets an answer for it.
    Complain("invoke frame " + std::to_string(frame.request_id) + ": " +
             request.error().ToString());
    SendError(FrameType::kError, frame.request_id,
              MakeError("InvalidRequest", request.error().message()));
    return;
  }
  auto outcome = runtime_->Invoke(*request);
  // Recorded before the reply goes out, so that a daemon closing the connection on reading it
  // cannot make the main thread exit 0 first.
  bool unusable = !runtime_->Usable();
  if (unusable) RecordStop(kExitUnusable);
  if (!outcome) {
    SendError(FrameType::kError, frame.request_id, std::move(outcome).error());
  } else if (outcome->size() > kMaxPayload) {
    SendError(
        FrameType::kError, frame.request_id,
        MakeError(kResultTooLarge, "the result is " + std::to_string(outcome->size()) +
                                       " bytes, the limit is " + std::to_string(kMaxPayload)));
  } else {
    Reply(FrameType::kResult, frame.request_id, *outcome);
  }
  if (unusable) Stop(kExitUnusable);
}

void Agent::SendError(FrameType type, uint64_t id, ErrorInfo error) {
  Reply(type, id, EncodeError(ClampError(std::move(error))));
}

void Agent::Reply(FrameType type, uint64_t id, std::string_view payload) {
  Status written;
  {
    std::lock_guard lock(write_mutex_);
    written = WriteFrame(fd_, type, id, payload);
  }
  if (!written) {
    Complain(written.error().ToString());
    Stop(kExitProtocolError);
  }
}

void Agent::RecordStop(int code) {
  int expected = -1;
  stop_code_.compare_exchange_strong(expected, code);
}

void Agent::Stop(int code) {
  RecordStop(code);
  // Only the reading side: replies still in progress on other workers can be written.
  ::shutdown(fd_, SHUT_RD);
}

// Never deleted: with concurrency > 1, worker threads wait on the pool's condition variables and
// may be inside the runtime until the process ends (glibc's pthread_cond_destroy would block on
// them). The caller ends the process with _exit right after RunAgent returns.
Agent* g_agent = nullptr;

}  // namespace

int RunAgent(int control_fd) {
  g_agent = new Agent(control_fd);
  return g_agent->Run();
}

}  // namespace ember::agent
