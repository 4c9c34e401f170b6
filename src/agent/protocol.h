// The framed protocol between the daemon (host) and ember-agent (inside a sandbox), spoken on
// one inherited stream socket (fd 3 in the sandbox). Every message is one frame:
//
//   offset  size  field
//   0       4     magic       "EMBR" (0x45 0x4d 0x42 0x52)
//   4       2     version     kProtocolVersion; a peer refuses any other
//   6       2     type        FrameType
//   8       8     request_id  chosen by the daemon; a reply carries its request's id
//   16      4     length      payload bytes that follow, at most kMaxPayload
//   20      4     reserved    0
//   24      ...   payload
//
// All integers are little-endian. Payloads are UTF-8 JSON unless the type says otherwise. The
// daemon sends kInit once, then kInvoke frames; the agent answers kInit with kReady or
// kInitFailed and every kInvoke with exactly one kResult or kError of the same request_id.
// A malformed frame (bad magic, version, type or length) is a protocol error: the reader reports
// it and the connection is dropped, since the stream cannot be resynchronised.
//
// A fork-boot template (an init request with "template") answers kReady, then serves only
// kSpawn frames (protocol_template.h): each carries fds (SCM_RIGHTS) and is answered with
// kSpawned or kSpawnFailed of the same request_id; kChildExited reports a child's end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::agent {

inline constexpr uint32_t kFrameMagic = 0x52424d45;  // "EMBR" read as little-endian
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 24;
// Events and results are capped below this (the HTTP API refuses larger events with 413).
inline constexpr uint32_t kMaxPayload = 16u << 20;
// InitRequest.concurrency is 1..kMaxConcurrency (the agent starts that many worker threads).
inline constexpr uint32_t kMaxConcurrency = 1024;

enum class FrameType : uint16_t {
  // daemon -> agent
  kInit = 1,    // payload: InitRequest as JSON
  kInvoke = 2,  // payload: InvokeRequest (see EncodeInvoke)
  kSpawn = 3,   // to a template: SpawnRequest as JSON, with fds
  // to an instance restored from a snapshot, before anything else: {"instance_id": "i-…"}; it
  // runs the runtime's after-fork hooks (reseeds) and answers kReady {"instance_id": …}
  kRestored = 4,

  // agent -> daemon
  kReady = 16,       // payload: {"init_us": N}  runtime initialized, handler loaded
  kInitFailed = 17,  // payload: ErrorInfo as JSON
  kResult = 18,      // payload: the handler's return value, serialized JSON
  kError = 19,       // payload: ErrorInfo as JSON
  // template -> daemon
  kSpawned = 20,      // payload: SpawnReply as JSON, with the child's pidfd
  kSpawnFailed = 21,  // payload: ErrorInfo as JSON
  kChildExited = 22,  // payload: ChildExit as JSON (request_id 0)
};

bool IsKnownFrameType(uint16_t type);
const char* FrameTypeName(FrameType type);

struct FrameHeader {
  FrameType type;
  uint64_t request_id = 0;
  uint32_t length = 0;
};

struct Frame {
  FrameType type;
  uint64_t request_id = 0;
  std::string payload;
};

// Appends header + payload to *out. The payload must not exceed kMaxPayload.
void EncodeFrame(FrameType type, uint64_t request_id, std::string_view payload, std::string* out);

// Decodes a 24-byte header; fails (kCorrupt) on bad magic, unknown version or type, a non-zero
// reserved field, or a length above kMaxPayload, naming the field and the value.
Result<FrameHeader> DecodeHeader(const uint8_t* bytes, size_t size);

// Incremental decoder for a byte stream: Feed() bytes as they arrive, then Next() until it
// returns no frame. After an error the reader stays failed.
class FrameReader {
 public:
  void Feed(const char* data, size_t size);
  // A complete frame, std::nullopt-like empty result (has_value() && !*) when more bytes are
  // needed, or the protocol error.
  Result<std::optional<Frame>> Next();
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  std::optional<Error> failed_;
};

// Blocking helpers for the agent (and tests): write a whole frame / read exactly one frame.
// ReadFrame returns kNotFound-coded error "connection closed" at a clean EOF between frames.
Status WriteFrame(int fd, FrameType type, uint64_t request_id, std::string_view payload);
Result<Frame> ReadFrame(int fd);

// kInit payload.
struct InitRequest {
  std::string function;             // name
  std::string runtime;              // python3.11 | native | process
  std::string handler;              // module.func | lib.so:symbol | command
  std::string code_dir;             // where the function's code is, inside the sandbox (the cwd)
  uint64_t memory_limit_bytes = 0;  // 0 = unlimited
  uint32_t concurrency = 1;         // invocations served at once
  std::string warmup_event;         // JSON; empty = none. Invoked once after init, result dropped
  uint64_t timeout_ms = 0;  // the per-invocation timeout: the warmup call's time left (0 = unset)
  // Set for a fork-boot template: the TemplateSpec JSON object (protocol_template.h), as text.
  std::string template_spec;
};
std::string EncodeInit(const InitRequest& init);
Result<InitRequest> DecodeInit(std::string_view payload);

// kInvoke payload: a little-endian u32 length, that many bytes of metadata JSON
// {"request_id": "...", "timeout_ms": N}, then the event's JSON text verbatim (so the agent can
// hand it to the runtime without re-serializing it).
struct InvokeRequest {
  std::string request_id;   // the API's id for the invocation ("req-…")
  uint64_t timeout_ms = 0;  // time the handler has left when the frame is sent
  std::string event;        // JSON text
};
std::string EncodeInvoke(const InvokeRequest& invoke);
Result<InvokeRequest> DecodeInvoke(std::string_view payload);

// kInitFailed / kError payload.
struct ErrorInfo {
  std::string type;  // e.g. "ZeroDivisionError", "HandlerNotFound", "ResultNotSerializable"
  std::string message;
  std::string traceback;  // may be empty
};
std::string EncodeError(const ErrorInfo& error);
Result<ErrorInfo> DecodeError(std::string_view payload);

}  // namespace ember::agent
