#include "engine/template.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdlib>
#include <cstring>

#include "agent/protocol_template.h"
#include "base/fs.h"
#include "base/log.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::chrono::microseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

BootError SpawnError(Error error) { return BootError{std::move(error), std::nullopt, ""}; }

// The parent of `pid` from /proc/<pid>/stat (the field after the state, past the comm's ')'), or
// 0.
pid_t ParentOf(pid_t pid) {
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 4 >= stat->size()) return 0;
  return static_cast<pid_t>(std::strtol(stat->c_str() + paren + 4, nullptr, 10));
}

}  // namespace

Result<pid_t> PidOfPidfd(int pidfd) {
  EMBER_ASSIGN_OR_RETURN(std::string info, ReadFile("/proc/self/fdinfo/" + std::to_string(pidfd)));
  size_t at = info.find("\nPid:");
  if (at == std::string::npos) return Fail(ErrorCode::kCorrupt, "pidfd fdinfo has no Pid line");
  long pid = std::strtol(info.c_str() + at + 5, nullptr, 10);
  if (pid <= 0) return Fail(ErrorCode::kNotFound, "the process of the pidfd is gone");
  return static_cast<pid_t>(pid);
}

Template::Template(asio::io_context& io, std::string id, std::string version, BootedInstance booted,
                   std::shared_ptr<sandbox::NetnsPool> netns, Hooks hooks)
    : io_(io),
      id_(std::move(id)),
      version_(std::move(version)),
      sandbox_(std::move(booted.sandbox)),
      netns_(std::move(netns)),
      hooks_(std::move(hooks)),
      control_(io, booted.control.release()),
      log_(io, booted.log.release()),
      children_log_(io),
      started_(std::chrono::system_clock::now()) {
  if (!booted.early_log.empty() && hooks_.on_log) hooks_.on_log(*this, booted.early_log);
  int ends[2];
  int on = 1;
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    spdlog::warn("template {}: cannot create its children's log socket: {}", id_,
                 std::strerror(errno));
    return;  // Spawn says why
  }
  children_log_.assign(ends[0]);
  children_log_out_.reset(ends[1]);
  ::shutdown(ends[0], SHUT_WR);
  if (::setsockopt(ends[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    spdlog::warn("template {}: SO_PASSCRED: {}", id_, std::strerror(errno));
  }
}

Template::~Template() {
  boost::system::error_code ignored;
  control_.close(ignored);
  log_.close(ignored);
  children_log_.close(ignored);
}

void Template::Start() {
  control_.non_blocking(true);
  log_.non_blocking(true);
  ReadControl();
  ReadLog();
  if (children_log_.is_open()) {
    children_log_.non_blocking(true);
    ReadChildrenLog();
  }
}

void Template::ReadControl() {
  control_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](
                                                                     boost::system::error_code ec) {
    if (ec || self->dead_) return;
    // recvmsg, not read: kSpawned frames carry the child's pidfd.
    std::vector<UniqueFd> fds;
    auto n = agent::ReceiveWithFds(self->control_.native_handle(), self->control_buf_,
                                   sizeof self->control_buf_, &fds);
    if (!n && n.error().code() == ErrorCode::kUnavailable) return self->ReadControl();
    if (!n || *n == 0) {
      self->Die(n ? "its control socket closed" : n.error().ToString());
      return;
    }
    for (auto& fd : fds) self->received_fds_.push_back(std::move(fd));
    self->reader_.Feed(self->control_buf_, *n);
    for (;;) {
      auto frame = self->reader_.Next();
      if (!frame) {
        self->Die("it broke the protocol: " + frame.error().ToString());
        return;
      }
      if (!*frame) break;
      self->OnFrame(**frame);
      if (self->dead_) return;
    }
    self->ReadControl();
  });
}

void Template::ReadLog() {
  log_.async_read_some(asio::buffer(log_buf_),
                       [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                         if (ec) return;
                         if (self->hooks_.on_log) {
                           self->hooks_.on_log(*self, std::string_view(self->log_buf_, n));
                         }
                         self->ReadLog();
                       });
}

void Template::ReadChildrenLog() {
  children_log_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [self = shared_from_this()](boost::system::error_code ec) {
                             if (ec) return;
                             self->DrainChildrenLog();
                             self->ReadChildrenLog();
                           });
}

void Template::DrainChildrenLog() {
  if (!children_log_.is_open()) return;
  for (;;) {
    struct iovec iov = {children_log_buf_, sizeof children_log_buf_};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(struct ucred))];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // With SO_PASSCRED the kernel never merges two writers' bytes into one read.
    ssize_t n = ::recvmsg(children_log_.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n <= 0) return;  // EAGAIN; EOF cannot happen while we hold the other end
    pid_t writer = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred cred {};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        writer = cred.pid;
      }
    }
    std::string_view text(children_log_buf_, static_cast<size_t>(n));
    std::string child = writer > 0 ? ChildOf(writer) : "";
    if (!child.empty() && hooks_.on_child_log) {
      hooks_.on_child_log(child, text);
    } else if (hooks_.on_log) {
      hooks_.on_log(*this, text);  // a writer that exited before we could place it
    }
  }
}

std::string Template::ChildOf(pid_t pid) const {
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    if (auto it = child_pids_.find(pid); it != child_pids_.end()) return it->second;
    pid = ParentOf(pid);
  }
  return "";
}

void Template::Spawn(const std::string& instance_id, ForkResources resources, UniqueFd netns,
                     Clock::time_point started, SpawnDone done) {
  if (dead_) {
    done(
        tl::unexpected(SpawnError(Error(ErrorCode::kUnavailable, "template " + id_ + " is dead"))));
    return;
  }
  UniqueFd log(children_log_out_ ? ::fcntl(children_log_out_.get(), F_DUPFD_CLOEXEC, 3) : -1);
  if (!log) {
    done(tl::unexpected(SpawnError(Error::Errno("template " + id_ + ": pass its log socket"))));
    return;
  }
  agent::SpawnRequest request{instance_id, netns.valid(),
                              static_cast<uint32_t>(resources.cgroup_procs.size())};
  uint64_t id = next_request_id_++;
  OutFrame frame;
  agent::EncodeFrame(agent::FrameType::kSpawn, id, agent::EncodeSpawnRequest(request),
                     &frame.bytes);
  // The frame owns the child's ends until they are sent; then ours must go, or EOF would never
  // reach either side.
  frame.fds.push_back(std::move(resources.control_child));
  frame.fds.push_back(std::move(log));
  if (netns) frame.fds.push_back(std::move(netns));
  for (auto& fd : resources.cgroup_procs) frame.fds.push_back(std::move(fd));
  resources.cgroup_procs.clear();
  pending_.emplace(id, Pending{instance_id, std::move(resources), started, std::move(done)});
  out_.push_back(std::move(frame));
  Flush();
}

void Template::Flush() {
  while (!out_.empty() && !waiting_to_write_ && !dead_) {
    OutFrame& frame = out_.front();
    std::vector<int> fds;
    if (frame.sent == 0) {
      for (const auto& fd : frame.fds) fds.push_back(fd.get());
    }
    auto sent = agent::SendWithFds(control_.native_handle(),
                                   std::string_view(frame.bytes).substr(frame.sent), fds);
    if (!sent && sent.error().code() == ErrorCode::kUnavailable) {
      waiting_to_write_ = true;
      control_.async_wait(asio::posix::stream_descriptor::wait_write,
                          [self = shared_from_this()](boost::system::error_code ec) {
                            self->waiting_to_write_ = false;
                            if (!ec) self->Flush();
                          });
      return;
    }
    if (!sent) {
      Die("cannot write to it: " + sent.error().ToString());
      return;
    }
    frame.sent += *sent;
    if (frame.sent == frame.bytes.size()) out_.pop_front();
  }
}

void Template::OnFrame(const agent::Frame& frame) {
  switch (frame.type) {
    case agent::FrameType::kSpawned:
      OnSpawned(frame.request_id, frame);
      return;
    case agent::FrameType::kSpawnFailed: {
      auto it = pending_.find(frame.request_id);
      if (it == pending_.end()) break;
      Pending pending = std::move(it->second);
      pending_.erase(it);
      auto info = agent::DecodeError(frame.payload);
      std::string why = info ? info->type + ": " + info->message : info.error().ToString();
      pending.done(tl::unexpected(SpawnError(Error(
          ErrorCode::kUnavailable,
          "template " + id_ + " could not fork instance " + pending.instance_id + ": " + why))));
      return;
    }
    case agent::FrameType::kChildExited: {
      auto exit = agent::DecodeChildExit(frame.payload);
      if (!exit) {
        Die("it sent a bad child exit: " + exit.error().ToString());
        return;
      }
      DrainChildrenLog();
      if (auto child = children_.find(exit->instance_id); child != children_.end()) {
        child_pids_.erase(child->second);
        children_.erase(child);
      }
      if (hooks_.on_child_exit) {
        hooks_.on_child_exit(exit->instance_id, ExitStatus{exit->signaled, exit->code, false});
      }
      return;
    }
    default:
      break;
  }
  Die(std::string("it sent an unexpected ") + agent::FrameTypeName(frame.type) + " frame");
}

void Template::OnSpawned(uint64_t request_id, const agent::Frame& frame) {
  auto it = pending_.find(request_id);
  if (it == pending_.end() || received_fds_.empty()) {
    Die("it answered a spawn it was not asked for, or without the child's pidfd");
    return;
  }
  Pending pending = std::move(it->second);
  pending_.erase(it);
  UniqueFd pidfd = std::move(received_fds_.front());
  received_fds_.pop_front();
  auto reply = agent::DecodeSpawnReply(frame.payload);
  auto host_pid = PidOfPidfd(pidfd.get());
  if (!reply || !host_pid) {
    // The child may already be gone; its cgroup is emptied when the lease goes.
    Error error = !reply ? reply.error() : host_pid.error();
    pending.done(tl::unexpected(
        SpawnError(std::move(error).Context("fork instance " + pending.instance_id))));
    return;
  }
  ++spawned_;
  children_[pending.instance_id] = *host_pid;
  child_pids_[*host_pid] = pending.instance_id;
  BootedInstance booted{sandbox::Sandbox::Adopted(pending.instance_id, *host_pid,
                                                  std::move(pending.resources.cgroup)),
                        std::move(pending.resources.control),
                        UniqueFd(),
                        "",
                        {},
                        ""};
  booted.timings.sandbox = Since(pending.started);
  pending.done(std::move(booted));
}

std::optional<ForkResources> Template::TakePrepared() {
  if (prepared_.empty() || dead_) return std::nullopt;
  ForkResources resources = std::move(prepared_.front());
  prepared_.pop_front();
  return resources;
}

void Template::Stop() {
  if (dead_) return;
  (void)sandbox_.Signal(SIGKILL);
}

void Template::Die(const std::string& why) {
  if (dead_) return;
  dead_ = true;
  spdlog::warn("template {}: {}", id_, why);
  (void)sandbox_.Signal(SIGKILL);
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p.done(tl::unexpected(
        SpawnError(Error(ErrorCode::kUnavailable, "template " + id_ + " died (" + why + ")"))));
  }
  out_.clear();
  prepared_.clear();  // their cgroup slots go back to the pool
  boost::system::error_code ignored;
  control_.close(ignored);
  DrainChildrenLog();
  children_.clear();
  child_pids_.clear();
  if (hooks_.on_dead) hooks_.on_dead(*this);
}

}  // namespace ember::engine
