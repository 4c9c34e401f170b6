#include "agent/protocol_template.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/protocol_json.h"
#include "sys/fd_passing.h"

namespace ember::agent {
namespace {

using Json = nlohmann::json;
using detail::DumpJson;
using detail::GetString;
using detail::GetUint;
using detail::ParseObject;

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Result<std::string> FromHex(std::string_view hex, std::string_view what) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return Fail(ErrorCode::kCorrupt, std::string(what) + ": odd length");
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return Fail(ErrorCode::kCorrupt, std::string(what) + ": not hex");
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

Result<int64_t> GetPid(const Json& value, std::string_view what) {
  EMBER_ASSIGN_OR_RETURN(uint64_t pid, GetUint(value, "pid", 0, what));
  if (pid == 0 || pid > (1u << 22)) {
    return Fail(ErrorCode::kCorrupt, std::string(what) + ": bad pid " + std::to_string(pid));
  }
  return static_cast<int64_t>(pid);
}

}  // namespace

std::string EncodeTemplateSpec(const TemplateSpec& spec) {
  Json limits = Json::array();
  for (const auto& l : spec.rlimits) limits.push_back({l.resource, l.soft, l.hard});
  return DumpJson(Json{{"tmpfs_size", spec.tmpfs_size},
                       {"tmp_size", spec.tmp_size},
                       {"uid", spec.uid},
                       {"gid", spec.gid},
                       {"workdir", spec.workdir},
                       {"binds", spec.binds},
                       {"rlimits", limits},
                       {"cap_last_cap", spec.cap_last_cap},
                       {"seccomp", ToHex(spec.seccomp)}});
}

Result<TemplateSpec> DecodeTemplateSpec(std::string_view payload) {
  constexpr std::string_view kWhat = "template spec";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  TemplateSpec spec;
  EMBER_ASSIGN_OR_RETURN(spec.tmpfs_size, GetUint(value, "tmpfs_size", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(spec.tmp_size, GetUint(value, "tmp_size", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(uint64_t uid, GetUint(value, "uid", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(uint64_t gid, GetUint(value, "gid", 0, kWhat));
  EMBER_ASSIGN_OR_RETURN(uint64_t last_cap, GetUint(value, "cap_last_cap", 40, kWhat));
  if (uid > UINT32_MAX || gid > UINT32_MAX || last_cap > 63 || spec.tmpfs_size == 0 ||
      spec.tmp_size == 0) {
    return Fail(ErrorCode::kCorrupt, "template spec: uid, gid, cap_last_cap or a size is invalid");
  }
  spec.uid = static_cast<uint32_t>(uid);
  spec.gid = static_cast<uint32_t>(gid);
  spec.cap_last_cap = static_cast<int>(last_cap);
  EMBER_ASSIGN_OR_RETURN(spec.workdir, GetString(value, "workdir", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(std::string seccomp_hex, GetString(value, "seccomp", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(spec.seccomp, FromHex(seccomp_hex, "template spec: seccomp"));
  if (spec.seccomp.empty() || spec.seccomp.size() % 8 != 0) {
    return Fail(ErrorCode::kCorrupt, "template spec: seccomp is not a list of BPF instructions");
  }
  auto binds = value.find("binds");
  if (binds == value.end() || !binds->is_array()) {
    return Fail(ErrorCode::kCorrupt, "template spec: \"binds\" must be an array");
  }
  for (const auto& bind : *binds) {
    if (!bind.is_string() || bind.get<std::string>().empty() || bind.get<std::string>()[0] != '/')
      return Fail(ErrorCode::kCorrupt, "template spec: a bind target is not an absolute path");
    spec.binds.push_back(bind.get<std::string>());
  }
  auto limits = value.find("rlimits");
  if (limits == value.end() || !limits->is_array()) {
    return Fail(ErrorCode::kCorrupt, "template spec: \"rlimits\" must be an array");
  }
  for (const auto& l : *limits) {
    if (!l.is_array() || l.size() != 3 || !l[0].is_number_unsigned() ||
        !l[1].is_number_unsigned() || !l[2].is_number_unsigned()) {
      return Fail(ErrorCode::kCorrupt, "template spec: an rlimit is not [resource, soft, hard]");
    }
    spec.rlimits.push_back({l[0].get<int>(), l[1].get<uint64_t>(), l[2].get<uint64_t>()});
  }
  return spec;
}

std::string EncodeSpawnRequest(const SpawnRequest& request) {
  return DumpJson(Json{{"instance_id", request.instance_id},
                       {"netns", request.netns},
                       {"cgroup_fds", request.cgroup_fds}});
}

Result<SpawnRequest> DecodeSpawnRequest(std::string_view payload) {
  constexpr std::string_view kWhat = "spawn request";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  SpawnRequest request;
  EMBER_ASSIGN_OR_RETURN(request.instance_id, GetString(value, "instance_id", true, kWhat));
  if (request.instance_id.empty() || request.instance_id.size() > 64) {
    return Fail(ErrorCode::kCorrupt, "spawn request: instance_id must be 1-64 characters");
  }
  auto netns = value.find("netns");
  request.netns = netns != value.end() && netns->is_boolean() && netns->get<bool>();
  EMBER_ASSIGN_OR_RETURN(uint64_t cgroups, GetUint(value, "cgroup_fds", 0, kWhat));
  if (cgroups + 2 + (request.netns ? 1 : 0) > kMaxSpawnFds) {
    return Fail(ErrorCode::kCorrupt, "spawn request: too many cgroup fds");
  }
  request.cgroup_fds = static_cast<uint32_t>(cgroups);
  return request;
}

std::string EncodeSpawnReply(const SpawnReply& reply) {
  return DumpJson(Json{{"instance_id", reply.instance_id}, {"pid", reply.pid}});
}

Result<SpawnReply> DecodeSpawnReply(std::string_view payload) {
  constexpr std::string_view kWhat = "spawn reply";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  SpawnReply reply;
  EMBER_ASSIGN_OR_RETURN(reply.instance_id, GetString(value, "instance_id", true, kWhat));
  EMBER_ASSIGN_OR_RETURN(reply.pid, GetPid(value, kWhat));
  return reply;
}

std::string EncodeChildExit(const ChildExit& exit) {
  return DumpJson(Json{{"instance_id", exit.instance_id},
                       {"pid", exit.pid},
                       {"signaled", exit.signaled},
                       {"code", exit.code}});
}

Result<ChildExit> DecodeChildExit(std::string_view payload) {
  constexpr std::string_view kWhat = "child exit";
  EMBER_ASSIGN_OR_RETURN(Json value, ParseObject(payload, kWhat));
  ChildExit exit;
  EMBER_ASSIGN_OR_RETURN(exit.instance_id, GetString(value, "instance_id", false, kWhat));
  EMBER_ASSIGN_OR_RETURN(exit.pid, GetPid(value, kWhat));
  auto signaled = value.find("signaled");
  exit.signaled = signaled != value.end() && signaled->is_boolean() && signaled->get<bool>();
  EMBER_ASSIGN_OR_RETURN(uint64_t code, GetUint(value, "code", 0, kWhat));
  if (code > 255) return Fail(ErrorCode::kCorrupt, "child exit: code out of range");
  exit.code = static_cast<int>(code);
  return exit;
}

Result<size_t> SendWithFds(int sock, std::string_view bytes, std::span<const int> fds) {
  if (fds.size() > kMaxSpawnFds) return Fail(ErrorCode::kInvalidArgument, "too many fds");
  ssize_t n =
      sys::SendWithFds(sock, bytes.data(), bytes.size(), fds.data(), fds.size(), MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Fail(ErrorCode::kUnavailable, "full");
    return FailErrno("send on fd " + std::to_string(sock));
  }
  return static_cast<size_t>(n);
}

Status WriteFrameWithFds(int sock, FrameType type, uint64_t request_id, std::string_view payload,
                         std::span<const int> fds) {
  std::string bytes;
  EncodeFrame(type, request_id, payload, &bytes);
  std::string_view rest = bytes;
  // Blocking: wait for room whenever the buffer is full. The fds go with the first bytes.
  while (!rest.empty()) {
    auto sent = SendWithFds(sock, rest, rest.size() == bytes.size() ? fds : std::span<const int>());
    if (!sent && sent.error().code() == ErrorCode::kUnavailable) {
      struct pollfd pfd = {sock, POLLOUT, 0};
      ::poll(&pfd, 1, -1);
      continue;
    }
    if (!sent) {
      return Fail(
          std::move(sent).error().Context(std::string("send ") + FrameTypeName(type) + " frame"));
    }
    rest.remove_prefix(*sent);
  }
  return Ok();
}

Result<size_t> ReceiveWithFds(int sock, char* buffer, size_t size, std::vector<UniqueFd>* fds) {
  int received[kMaxSpawnFds];
  size_t count = 0;
  bool truncated = false;
  ssize_t n = sys::ReceiveWithFds(sock, buffer, size, received, kMaxSpawnFds, &count, &truncated);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Fail(ErrorCode::kUnavailable, "no data");
    return FailErrno("receive from fd " + std::to_string(sock));
  }
  for (size_t i = 0; i < count; ++i) fds->emplace_back(received[i]);
  if (truncated) {
    return Fail(ErrorCode::kCorrupt, "more than " + std::to_string(kMaxSpawnFds) +
                                         " fds came with one frame; the kernel dropped some");
  }
  return static_cast<size_t>(n);
}

Result<FrameWithFds> ReadFrameWithFds(int sock) {
  FrameWithFds out;
  char header[kFrameHeaderSize];
  size_t got = 0;
  while (got < sizeof header) {
    EMBER_ASSIGN_OR_RETURN(size_t n,
                           ReceiveWithFds(sock, header + got, sizeof header - got, &out.fds));
    if (n == 0) {
      if (got == 0) return Fail(ErrorCode::kNotFound, "connection closed");
      return Fail(ErrorCode::kCorrupt, "connection closed inside a frame header");
    }
    got += n;
  }
  EMBER_ASSIGN_OR_RETURN(FrameHeader h,
                         DecodeHeader(reinterpret_cast<const uint8_t*>(header), sizeof header));
  out.frame.type = h.type;
  out.frame.request_id = h.request_id;
  out.frame.payload.resize(h.length);
  size_t done = 0;
  while (done < h.length) {
    EMBER_ASSIGN_OR_RETURN(
        size_t n, ReceiveWithFds(sock, out.frame.payload.data() + done, h.length - done, &out.fds));
    if (n == 0) return Fail(ErrorCode::kCorrupt, "connection closed inside a frame");
    done += n;
  }
  return out;
}

}  // namespace ember::agent
