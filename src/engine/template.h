// A fork-boot template as the engine sees it, on the io thread (DESIGN.md, "fork boot"): the
// template's sandbox (booted by the Launcher with fork_template), its control socket, its log,
// and the pool of network namespaces its children join. Spawn() sends the template one request
// with the child's fds; the reply becomes a BootedInstance whose sandbox is Adopted (the
// template is the child's parent and reaper, and reports each exit, which the engine hands to
// the child's Instance).
//
// The children's stdout and stderr are one socket per template (not a pipe each, which would
// cost the daemon an fd per instance): a stream socket whose reading end has SO_PASSCRED, so
// each read carries the writer's pid, which names the child. A child relays its own fds 1 and 2
// through one thread (agent/log_relay.h), so its subprocesses' output carries its pid too; the
// parent chain of an unknown writer is walked as well.
//
// A template lives as long as its function's version is current or any of its children is
// alive: the kernel ends every child when its template dies (they are in pid namespaces below
// the template's), so a retired template is stopped only once its last child is gone.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/protocol.h"
#include "engine/launcher.h"
#include "sandbox/netns_pool.h"

namespace ember::engine {

using SpawnDone = std::function<void(tl::expected<BootedInstance, BootError>)>;

class Template : public std::enable_shared_from_this<Template> {
 public:
  struct Hooks {
    // A child of this template exited (reaped by the template).
    std::function<void(const std::string& instance_id, ExitStatus status)> on_child_exit;
    // The template died: every child died with it.
    std::function<void(Template&)> on_dead;
    std::function<void(Template&, std::string_view)> on_log;  // the template's own output
    // Output of a child (or of a process below it).
    std::function<void(const std::string& instance_id, std::string_view)> on_child_log;
  };

  Template(boost::asio::io_context& io, std::string id, std::string version, BootedInstance booted,
           std::shared_ptr<sandbox::NetnsPool> netns, Hooks hooks);
  ~Template();
  void Start();

  const std::string& id() const { return id_; }
  const std::string& version() const { return version_; }
  bool alive() const { return !dead_; }
  pid_t pid() const { return sandbox_.pid(); }
  // Its memory cgroup's directory, which its children share where that is possible (v1).
  std::string memory_cgroup() { return sandbox_.cgroup().dirs().memory; }
  size_t children() const { return children_.size(); }
  std::chrono::system_clock::time_point started() const { return started_; }
  const std::shared_ptr<sandbox::NetnsPool>& netns() const { return netns_; }
  uint64_t spawned() const { return spawned_; }

  // Asks the template for a child. `resources` and `netns` come from the pools (prepared on a
  // boot thread); `done` runs on the io thread with the child, or why there is none.
  void Spawn(const std::string& instance_id, ForkResources resources, UniqueFd netns,
             std::chrono::steady_clock::time_point started, SpawnDone done);
  // Fork resources claimed ahead for this template's next children (Engine::PrepareForkResources),
  // so that a spawn needs no boot-thread round trip. Released with the template.
  std::optional<ForkResources> TakePrepared();
  void AddPrepared(ForkResources resources) { prepared_.push_back(std::move(resources)); }
  size_t prepared() const { return prepared_.size(); }
  // Whether a preparation is under way on a boot thread (one at a time).
  bool preparing() const { return preparing_; }
  void set_preparing(bool preparing) { preparing_ = preparing; }
  // Kills the template (and so every child still alive).
  void Stop();
  // After on_dead: the sandbox, for teardown off the io thread.
  sandbox::Sandbox TakeSandbox() { return std::move(sandbox_); }

 private:
  struct Pending {
    std::string instance_id;
    ForkResources resources;
    std::chrono::steady_clock::time_point started;
    SpawnDone done;
  };

  // A frame on its way to the template, with the fds it carries (closed once it is sent).
  struct OutFrame {
    std::string bytes;
    std::vector<UniqueFd> fds;
    size_t sent = 0;
  };

  void ReadControl();
  void ReadLog();
  void ReadChildrenLog();
  // Hands out what the children wrote so far (a child's last words come before its exit).
  void DrainChildrenLog();
  // The child that `pid` is, or is a descendant of ("" if none).
  std::string ChildOf(pid_t pid) const;
  // Writes queued frames until the socket is full, then waits for room (a burst of spawns can
  // outrun the template).
  void Flush();
  void OnFrame(const agent::Frame& frame);
  void OnSpawned(uint64_t request_id, const agent::Frame& frame);
  void Die(const std::string& why);

  boost::asio::io_context& io_;
  std::string id_;
  std::string version_;
  sandbox::Sandbox sandbox_;
  std::shared_ptr<sandbox::NetnsPool> netns_;
  Hooks hooks_;
  boost::asio::posix::stream_descriptor control_;
  boost::asio::posix::stream_descriptor log_;
  boost::asio::posix::stream_descriptor children_log_;  // ours: SO_PASSCRED
  UniqueFd children_log_out_;                           // the children's end, sent with every spawn
  agent::FrameReader reader_;
  std::deque<UniqueFd> received_fds_;  // pidfds that came with kSpawned frames, in order
  char control_buf_[16384];
  char log_buf_[16384];
  char children_log_buf_[16384];
  uint64_t next_request_id_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::deque<OutFrame> out_;
  bool waiting_to_write_ = false;
  std::map<std::string, pid_t> children_;    // live children: instance id -> host pid
  std::map<pid_t, std::string> child_pids_;  // the reverse
  uint64_t spawned_ = 0;
  std::deque<ForkResources> prepared_;
  bool preparing_ = false;
  bool dead_ = false;
  std::chrono::system_clock::time_point started_;
};

// The host pid of the process a pidfd refers to (from /proc/self/fdinfo).
Result<pid_t> PidOfPidfd(int pidfd);

}  // namespace ember::engine
