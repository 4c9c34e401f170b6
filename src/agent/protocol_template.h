// The fork-boot part of the daemon <-> agent protocol (protocol.h has the framing). A template
// is booted with InitRequest.template_spec set; after kReady it serves only kSpawn frames.
//
//   daemon -> template   kSpawn        SpawnRequest, fds: control, log, [netns], cgroup.procs…
//   template -> daemon   kSpawned      SpawnReply, fd: the child's pidfd
//                        kSpawnFailed  ErrorInfo (the clone failed; nothing was started)
//                        kChildExited  ChildExit, whenever the template reaps a child
//   child -> daemon      kReady / kInitFailed on the child's own control socket, then the
//                        ordinary invoke protocol
//
// Frames that carry fds are sent with one sendmsg, so the fds arrive with the frame's first
// bytes; a reader collects them with recvmsg (ReadFrameWithFds, or the daemon's own reader).
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/protocol.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "sys/fd_passing.h"

namespace ember::agent {

// What every child of a template gets, as in a plain-boot sandbox of the function.
struct TemplateSpec {
  uint64_t tmpfs_size = 0;  // each child's writable layer
  uint64_t tmp_size = 0;    // its /tmp layer and /dev/shm
  uint32_t uid = 0;         // the user the function runs as, inside
  uint32_t gid = 0;
  std::string workdir;
  std::vector<std::string> binds;  // read-only bind targets of the template to carry over
  struct Limit {
    int resource;
    uint64_t soft, hard;
  };
  std::vector<Limit> rlimits;
  int cap_last_cap = 40;
  // The strict filter, struct sock_filter[] as raw bytes. Checked, but no longer installed in the
  // children: they stack sandbox::TemplateToStrictFilter() on the template's (fork_seccomp.h).
  std::string seccomp;
};
std::string EncodeTemplateSpec(const TemplateSpec& spec);
Result<TemplateSpec> DecodeTemplateSpec(std::string_view payload);

// kSpawn payload. The fds, in order: the child's control socket, its log, the network
// namespace to join (when `netns`), then `cgroup_fds` cgroup.procs files to join.
struct SpawnRequest {
  std::string instance_id;  // also the child's hostname
  bool netns = true;
  uint32_t cgroup_fds = 0;
};
inline constexpr size_t kMaxSpawnFds = sys::kMaxPassedFds;
std::string EncodeSpawnRequest(const SpawnRequest& request);
Result<SpawnRequest> DecodeSpawnRequest(std::string_view payload);

// kSpawned payload; the child's pidfd comes with it.
struct SpawnReply {
  std::string instance_id;
  int64_t pid = 0;  // in the template's pid namespace
};
std::string EncodeSpawnReply(const SpawnReply& reply);
Result<SpawnReply> DecodeSpawnReply(std::string_view payload);

// kChildExited payload.
struct ChildExit {
  std::string instance_id;
  int64_t pid = 0;
  bool signaled = false;
  int code = 0;  // exit code, or the signal number
};
std::string EncodeChildExit(const ChildExit& exit);
Result<ChildExit> DecodeChildExit(std::string_view payload);

// One sendmsg of `bytes` (MSG_DONTWAIT), with `fds` attached when there are any. Returns the
// bytes sent; a full socket buffer is kUnavailable (nothing was sent, the fds did not go).
Result<size_t> SendWithFds(int sock, std::string_view bytes, std::span<const int> fds);

// One frame in one sendmsg, with `fds` attached (at most kMaxSpawnFds).
Status WriteFrameWithFds(int sock, FrameType type, uint64_t request_id, std::string_view payload,
                         std::span<const int> fds);

struct FrameWithFds {
  Frame frame;
  std::vector<UniqueFd> fds;  // close-on-exec
};
// Blocking: reads one frame and the fds that came with it. Fails (kCorrupt) if the kernel had to
// drop fds (more than kMaxSpawnFds).
Result<FrameWithFds> ReadFrameWithFds(int sock);

// Receives whatever is available into `buffer` (non-blocking socket), appending passed fds to
// `fds`. Returns bytes read (0 at EOF), or an error; EAGAIN comes back as kUnavailable.
Result<size_t> ReceiveWithFds(int sock, char* buffer, size_t size, std::vector<UniqueFd>* fds);

}  // namespace ember::agent
