#include "agent/protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/protocol_json.h"

namespace ember::agent {
namespace {

using Json = nlohmann::json;

void PutLe(uint64_t value, size_t bytes, std::string* out) {
  for (size_t i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t GetLe(const uint8_t* bytes, size_t size) {
  uint64_t value = 0;
  for (size_t i = 0; i < size; ++i) value |= uint64_t(bytes[i]) << (8 * i);
  return value;
}

// Reads exactly `size` bytes unless the stream ends first; returns the count read.
Result<size_t> ReadFull(int fd, char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FailErrno("read from fd " + std::to_string(fd));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

namespace detail {

// nlohmann's dump() throws on invalid UTF-8; handler messages may contain anything, so invalid
// sequences become U+FFFD instead.
std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<Json> ParseObject(std::string_view text, std::string_view what) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded())
    return Fail(ErrorCode::kCorrupt, std::string(what) + ": not valid JSON");
  if (!value.is_object()) {
    return Fail(ErrorCode::kCorrupt,
                std::string(what) + ": expected a JSON object, got " + value.type_name());
  }
  return value;
}

// A string member; `required` members must be present, optional ones default to "".
Result<std::string> GetString(const Json& object, const char* key, bool required,
                              std::string_view what) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (!required) return std::string();
    return Fail(ErrorCode::kCorrupt, std::string(what) + ": missing \"" + key + "\"");
  }
  if (!it->is_string()) {
    return Fail(ErrorCode::kCorrupt,
                std::string(what) + ": \"" + key + "\" must be a string, not " + it->type_name());
  }
  return it->get<std::string>();
}

// An optional unsigned integer member (absent = `fallback`).
Result<uint64_t> GetUint(const Json& object, const char* key, uint64_t fallback,
                         std::string_view what) {
  auto it = object.find(key);
  if (it == object.end()) return fallback;
  if (!it->is_number_unsigned()) {
    return Fail(ErrorCode::kCorrupt, std::string(what) + ": \"" + key +
                                         "\" must be a non-negative integer, not " + it->dump());
  }
  return it->get<uint64_t>();
}

}  // namespace detail

using detail::DumpJson;
using detail::GetString;
using detail::GetUint;
using detail::ParseObject;

bool IsKnownFrameType(uint16_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kInit:
    case FrameType::kInvoke:
    case FrameType::kReady:
    case FrameType::kInitFailed:
    case FrameType::kResult:
    case FrameType::kError:
    case FrameType::kSpawn:
    case FrameType::kRestored:
    case FrameType::kSpawned:
    case FrameType::kSpawnFailed:
    case FrameType::kChildExited:
      return true;
  }
  return false;
}

const char* FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kInit:
      return "init";
    case FrameType::kInvoke:
      return "invoke";
    case FrameType::kReady:
      return "ready";
    case FrameType::kInitFailed:
      return "init_failed";
    case FrameType::kResult:
      return "result";
    case FrameType::kError:
      return "error";
    case FrameType::kSpawn:
      return "spawn";
    case FrameType::kRestored:
      return "restored";
    case FrameType::kSpawned:
      return "spawned";
    case FrameType::kSpawnFailed:
      return "spawn_failed";
    case FrameType::kChildExited:
      return "child_exited";
  }
  return "unknown";
}

void EncodeFrame(FrameType type, uint64_t request_id, std::string_view payload, std::string* out) {
  out->reserve(out->size() + kFrameHeaderSize + payload.size());
  PutLe(kFrameMagic, 4, out);
  PutLe(kProtocolVersion, 2, out);
  PutLe(static_cast<uint16_t>(type), 2, out);
  PutLe(request_id, 8, out);
  PutLe(payload.size(), 4, out);
  PutLe(0, 4, out);
  out->append(payload);
}

Result<FrameHeader> DecodeHeader(const uint8_t* bytes, size_t size) {
  if (size < kFrameHeaderSize) {
    return Fail(ErrorCode::kCorrupt, "frame header: " + std::to_string(size) + " bytes, need " +
                                         std::to_string(kFrameHeaderSize));
  }
  auto magic = static_cast<uint32_t>(GetLe(bytes, 4));
  if (magic != kFrameMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    return Fail(ErrorCode::kCorrupt, std::string("frame header: bad magic ") + hex +
                                         " (expected \"EMBR\"; not an ember stream?)");
  }
  auto version = static_cast<uint16_t>(GetLe(bytes + 4, 2));
  if (version != kProtocolVersion) {
    return Fail(ErrorCode::kCorrupt, "frame header: protocol version " + std::to_string(version) +
                                         ", this side speaks " + std::to_string(kProtocolVersion));
  }
  auto type = static_cast<uint16_t>(GetLe(bytes + 6, 2));
  if (!IsKnownFrameType(type)) {
    return Fail(ErrorCode::kCorrupt, "frame header: unknown frame type " + std::to_string(type));
  }
  auto length = static_cast<uint32_t>(GetLe(bytes + 16, 4));
  if (length > kMaxPayload) {
    return Fail(ErrorCode::kCorrupt, "frame header: payload length " + std::to_string(length) +
                                         " exceeds the limit of " + std::to_string(kMaxPayload));
  }
  auto reserved = static_cast<uint32_t>(GetLe(bytes + 20, 4));
  if (reserved != 0) {
    return Fail(ErrorCode::kCorrupt,
                "frame header: reserved field is " + std::to_string(reserved) + ", must be 0");
  }
  return FrameHeader{static_cast<FrameType>(type), GetLe(bytes + 8, 8), length};
}

void FrameReader::Feed(const char* data, size_t size) {
  // A failed stream cannot be resynchronised, so anything after the error is dropped rather than
  // buffered.
  if (failed_) return;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ >= (64u << 10) && offset_ * 2 >= buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(data, size);
}

namespace {
constexpr size_t kMoveThreshold = 64u << 10;
}  // namespace

Result<std::optional<Frame>> FrameReader::Next() {
  if (failed_) return Fail(*failed_);
  if (buffered() < kFrameHeaderSize) return std::optional<Frame>();
  auto header =
      DecodeHeader(reinterpret_cast<const uint8_t*>(buffer_.data() + offset_), kFrameHeaderSize);
  if (!header) {
    failed_ = header.error();
    buffer_.clear();
    offset_ = 0;
    return Fail(*failed_);
  }
  const size_t frame_size = kFrameHeaderSize + header->length;
  if (buffered() < frame_size) return std::optional<Frame>();
  Frame frame{header->type, header->request_id, {}};
  if (offset_ == 0 && buffer_.size() == frame_size && header->length >= kMoveThreshold) {
    // A large frame alone in the buffer (a big event or result): hand the buffer itself over
    // instead of copying the payload into fresh memory, whose page faults cost more than the
    // copy (~2 µs per 4 KiB page here).
    buffer_.erase(0, kFrameHeaderSize);
    frame.payload = std::move(buffer_);
    buffer_ = std::string();
    offset_ = 0;
  } else {
    frame.payload = buffer_.substr(offset_ + kFrameHeaderSize, header->length);
    offset_ += frame_size;
  }
  return std::optional<Frame>(std::move(frame));
}

Status WriteFrame(int fd, FrameType type, uint64_t request_id, std::string_view payload) {
  if (payload.size() > kMaxPayload) {
    return Fail(ErrorCode::kInvalidArgument,
                std::string("write ") + FrameTypeName(type) + " frame: payload of " +
                    std::to_string(payload.size()) + " bytes exceeds the limit of " +
                    std::to_string(kMaxPayload));
  }
  std::string bytes;
  EncodeFrame(type, request_id, payload, &bytes);
  size_t done = 0;
  bool is_socket = true;
  while (done < bytes.size()) {
    // MSG_NOSIGNAL: a peer that went away is an EPIPE error here, not a SIGPIPE for the process.
    ssize_t n = is_socket ? ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL)
                          : ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOTSOCK && is_socket) {
        is_socket = false;
        continue;
      }
      return FailErrno(std::string("write ") + FrameTypeName(type) + " frame to fd " +
                       std::to_string(fd));
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<Frame> ReadFrame(int fd) {
  char header_bytes[kFrameHeaderSize];
  EMBER_ASSIGN_OR_RETURN(size_t got, ReadFull(fd, header_bytes, sizeof header_bytes));
  if (got == 0) return Fail(ErrorCode::kNotFound, "connection closed");
  if (got < sizeof header_bytes) {
    return Fail(ErrorCode::kCorrupt, "truncated frame header: the connection closed after " +
                                         std::to_string(got) + " of " +
                                         std::to_string(kFrameHeaderSize) + " bytes");
  }
  EMBER_ASSIGN_OR_RETURN(FrameHeader header,
                         DecodeHeader(reinterpret_cast<const uint8_t*>(header_bytes), got));
  Frame frame{header.type, header.request_id, std::string(header.length, '\0')};
  EMBER_ASSIGN_OR_RETURN(got, ReadFull(fd, frame.payload.data(), header.length));
  if (got < header.length) {
    return Fail(ErrorCode::kCorrupt, std::string("truncated ") + FrameTypeName(header.type) +
                                         " frame: the connection closed after " +
                                         std::to_string(got) + " of " +
                                         std::to_string(header.length) + " payload bytes");
  }
  return frame;
}

std::string EncodeInit(const InitRequest& init) {
  Json value = {{"function", init.function},
                {"runtime", init.runtime},
                {"handler", init.handler},
                {"code_dir", init.code_dir},
                {"memory_limit_bytes", init.memory_limit_bytes},
                {"concurrency", init.concurrency},
                {"timeout_ms", init.timeout_ms}};
  if (!init.warmup_event.empty()) value["warmup_event"] = init.warmup_event;
  if (!init.template_spec.empty())
    value["template"] = Json::parse(init.template_spec, nullptr, false);
  return DumpJson(value);
}

Result<InitRequest> DecodeInit(std::string_view payload) {
  constexpr std::string_view kWhat = "init request";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  InitRequest init;
  EMBER_ASSIGN_OR_RETURN(init.function, GetString(value, "function", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.runtime, GetString(value, "runtime", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.handler, GetString(value, "handler", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.code_dir, GetString(value, "code_dir", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.warmup_event, GetString(value, "warmup_event", false, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.memory_limit_bytes, GetUint(value, "memory_limit_bytes", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(init.timeout_ms, GetUint(value, "timeout_ms", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(uint64_t concurrency, GetUint(value, "concurrency", 1, kWhat));
  if (concurrency < 1 || concurrency > kMaxConcurrency) {
    return Fail(ErrorCode::kCorrupt, "init request: concurrency " + std::to_string(concurrency) +
                                         " is outside 1.." + std::to_string(kMaxConcurrency));
  }
  init.concurrency = static_cast<uint32_t>(concurrency);
  if (auto it = value.find("template"); it != value.end()) {
    if (!it->is_object()) {
      return Fail(ErrorCode::kCorrupt, "init request: \"template\" must be an object");
    }
    init.template_spec = DumpJson(*it);
  }
  if (init.handler.empty()) return Fail(ErrorCode::kCorrupt, "init request: empty \"handler\"");
  if (init.code_dir.empty()) return Fail(ErrorCode::kCorrupt, "init request: empty \"code_dir\"");
  return init;
}

std::string EncodeInvoke(const InvokeRequest& invoke) {
  std::string metadata =
      DumpJson(Json{{"request_id", invoke.request_id}, {"timeout_ms", invoke.timeout_ms}});
  std::string out;
  out.reserve(4 + metadata.size() + invoke.event.size());
  PutLe(metadata.size(), 4, &out);
  out.append(metadata).append(invoke.event);
  return out;
}

Result<InvokeRequest> DecodeInvoke(std::string_view payload) {
  if (payload.size() < 4) {
    return Fail(ErrorCode::kCorrupt, "invoke request: " + std::to_string(payload.size()) +
                                         " bytes, too short for the metadata length");
  }
  uint64_t metadata_size = GetLe(reinterpret_cast<const uint8_t*>(payload.data()), 4);
  if (metadata_size > payload.size() - 4) {
    return Fail(ErrorCode::kCorrupt, "invoke request: metadata length " +
                                         std::to_string(metadata_size) + " exceeds the " +
                                         std::to_string(payload.size() - 4) + " bytes that follow");
  }
  constexpr std::string_view kWhat = "invoke request metadata";
  EMBER_ASSIGN_OR_RETURN(Json metadata, ParseObject(payload.substr(4, metadata_size), kWhat));
  InvokeRequest invoke;
  EMBER_ASSIGN_OR_RETURN(invoke.request_id, GetString(metadata, "request_id", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(invoke.timeout_ms, GetUint(metadata, "timeout_ms", 0, kWhat));
  invoke.event = std::string(payload.substr(4 + metadata_size));
  return invoke;
}

std::string EncodeError(const ErrorInfo& error) {
  Json value = {{"type", error.type}, {"message", error.message}};
  if (!error.traceback.empty()) value["traceback"] = error.traceback;
  return DumpJson(value);
}

Result<ErrorInfo> DecodeError(std::string_view payload) {
  constexpr std::string_view kWhat = "error info";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  ErrorInfo error;
  EMBER_ASSIGN_OR_RETURN(error.type, GetString(value, "type", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(error.message, GetString(value, "message", false, kWhat));
  EMBER_ASSIGN_OR_RETURN(error.traceback, GetString(value, "traceback", false, kWhat));
  return error;
}

}  // namespace ember::agent
