#include "sandbox/netns_pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "base/log.h"
#include "sandbox/netns_helper.h"
#include "sandbox/pool_target.h"
#include "sys/fd_passing.h"
#include "sys/syscalls.h"

namespace ember::sandbox {

namespace {

using Clock = PoolTarget::Clock;

// How long without any Take() before the target halves (one halving per period).
constexpr auto kIdleShrinkPeriod = std::chrono::seconds(30);
// After a background creation failed (e.g. the owner's user namespace hit
// user.max_net_namespaces), the refill waits this long before trying again. Take() on a miss
// still tries at once.
constexpr auto kRefillRetryDelay = std::chrono::seconds(1);
// While namespaces are still ready, the refill waits for this long without a Take(): creating one
// costs ≈0.7 ms of CPU in the kernel, which on a 2-CPU host beside the sandbox that just took
// one would only slow that sandbox's start down. An empty pool is refilled at once.
constexpr auto kRefillPause = std::chrono::milliseconds(5);

// Receives one reply, with the fd attached to it if any. Returns 0 on EOF.
Result<ssize_t> ReceiveReply(int sock, NetnsHelperReply* reply, UniqueFd* passed_fd) {
  int fd = -1;
  size_t fd_count = 0;
  bool truncated = false;
  ssize_t n = sys::ReceiveWithFds(sock, reply, sizeof *reply, &fd, 1, &fd_count, &truncated);
  if (n < 0) return FailErrno("read the netns helper's reply");
  if (fd_count == 1) passed_fd->reset(fd);
  if (n != 0 && n != static_cast<ssize_t>(sizeof *reply)) {
    return Fail(ErrorCode::kInternal, "short reply from the netns helper");
  }
  return n;
}

// Whether `fd` is the user namespace this process is in already (setns into it would fail
// with EINVAL, and is not needed).
Result<bool> IsOwnUserNamespace(int fd) {
  struct stat theirs {};
  struct stat ours {};
  if (::fstat(fd, &theirs) != 0) return FailErrno("stat the owner's user namespace");
  if (::stat("/proc/self/ns/user", &ours) != 0) return FailErrno("stat /proc/self/ns/user");
  return theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino;
}

}  // namespace

class NetnsPool::Impl {
 public:
  Impl(const NetnsPoolOptions& options, UniqueFd user_ns, bool join_user_ns, UniqueFd pool_sock,
       UniqueFd helper_sock)
      : options_(options),
        owner_("pid " + std::to_string(options.owner_pid)),
        user_ns_(std::move(user_ns)),
        join_user_ns_(join_user_ns),
        pool_sock_(std::move(pool_sock)),
        helper_sock_(std::move(helper_sock)),
        target_(options.min_ready, options.max_ready, kIdleShrinkPeriod, Clock::now()) {}

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // A refill waiting for a reply returns at once with EOF instead of finishing its request.
    if (helper_.running()) (void)helper_.Signal(SIGKILL);
    if (thread_.joinable()) thread_.join();
    helper_.KillAndReap();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Starts the thread, which forks the helper; returns once the helper is set up (or failed).
  Status Start() {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error& e) {
      return Fail(ErrorCode::kResourceExhausted,
                  std::string("start the refill thread: ") + e.what());
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return started_.has_value(); });
    return *started_;
  }

  std::optional<UniqueFd> TryTake() {
    std::lock_guard lock(mu_);
    if (ready_.empty()) return std::nullopt;
    UniqueFd fd = std::move(ready_.front());
    ready_.pop_front();
    ++taken_;
    last_take_ = Clock::now();
    target_.OnTake(last_take_, /*miss=*/false);
    cv_.notify_all();
    return fd;
  }

  Result<UniqueFd> Take() {
    if (auto ready = TryTake()) return std::move(*ready);
    {
      std::lock_guard lock(mu_);
      target_.OnTake(Clock::now(), /*miss=*/true);
      // Holds the refill back so that this Take waits for at most the request in flight.
      ++sync_creates_;
    }
    auto fd = CreateOne();
    {
      std::lock_guard lock(mu_);
      --sync_creates_;
      if (fd) {
        ++taken_;
        ++misses_;
        ++created_;
        retry_at_ = {};  // creation works again: no reason for the refill to keep waiting
      }
    }
    cv_.notify_all();
    if (!fd) return Fail(std::move(fd).error().Context("take a network namespace for " + owner_));
    return fd;
  }

  NetnsPoolStats Stats() const {
    std::lock_guard lock(mu_);
    return {ready_.size(), target_.value(), taken_, misses_, created_};
  }

 private:
  void Run() {
    ::pthread_setname_np(::pthread_self(), "ember-netns");
    Status started = StartHelper();
    {
      std::lock_guard lock(mu_);
      started_ = started;
    }
    cv_.notify_all();
    // On failure the thread ends here, and the helper (if forked) dies with it.
    if (started) Refill();
  }

  // Forks the helper from this thread, so that its PR_SET_PDEATHSIG fires when this thread
  // ends, and waits for it to join the owner's user namespace.
  Status StartHelper() {
    const NetnsHelperArgs args{helper_sock_.get(), join_user_ns_ ? user_ns_.get() : -1,
                               options_.mode == NetworkMode::kLoopback, ::getpid()};
    int pidfd = -1;
    struct clone_args spec {};
    spec.flags = CLONE_PIDFD;
    spec.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    spec.exit_signal = SIGCHLD;
    long pid = sys::Clone3(&spec);
    if (pid < 0) return FailErrno("clone3 the netns helper");
    if (pid == 0) RunNetnsHelper(args);
    helper_ = ChildProcess(static_cast<pid_t>(pid), UniqueFd(pidfd));
    helper_sock_.reset();
    user_ns_.reset();

    NetnsHelperReply reply;
    UniqueFd unused;
    EMBER_ASSIGN_OR_RETURN(ssize_t n, ReceiveReply(pool_sock_.get(), &reply, &unused));
    if (n == 0) {
      return Fail(ErrorCode::kInternal,
                  "netns helper " + std::to_string(pid) + " exited during start-up");
    }
    if (reply.error != 0) {
      std::string step = NetnsHelperStepName(reply.step);
      if (reply.step == NetnsHelperStep::kJoinUserNamespace) {
        step = "setns into the user namespace of " + owner_;
      }
      return FailErrno(step, reply.error);
    }
    return Ok();
  }

  // One request and its reply. Take() and the refill share the socket; helper_mu_ keeps each
  // reply with its request.
  Result<UniqueFd> CreateOne() {
    std::lock_guard lock(helper_mu_);
    const char request = 1;
    ssize_t n;
    do {
      n = ::send(pool_sock_.get(), &request, 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
      return FailErrno("ask the netns helper (pid " + std::to_string(helper_.pid()) +
                       ") for a namespace");
    }
    NetnsHelperReply reply;
    UniqueFd fd;
    EMBER_ASSIGN_OR_RETURN(n, ReceiveReply(pool_sock_.get(), &reply, &fd));
    if (n == 0) {
      return Fail(ErrorCode::kUnavailable,
                  "netns helper (pid " + std::to_string(helper_.pid()) + ") exited");
    }
    if (reply.error != 0) {
      return FailErrno(
          std::string(NetnsHelperStepName(reply.step)) + " in the user namespace of " + owner_,
          reply.error);
    }
    if (reply.step != NetnsHelperStep::kCreated || !fd) {
      return Fail(ErrorCode::kInternal, "netns helper replied without a namespace");
    }
    return fd;
  }

  // The background: keeps target_ namespaces ready, and lets go of those above it when the
  // target shrinks.
  void Refill() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      const auto now = Clock::now();
      target_.OnTick(now);
      if (ready_.size() > target_.value()) {
        std::vector<UniqueFd> excess;
        while (ready_.size() > target_.value()) {
          excess.push_back(std::move(ready_.back()));
          ready_.pop_back();
        }
        lock.unlock();
        excess.clear();  // closing a namespace's last fd queues its teardown in the kernel
        lock.lock();
        continue;
      }
      if (ready_.size() >= target_.value() || sync_creates_ > 0 || now < retry_at_) {
        auto wake = target_.NextShrinkAt();
        if (ready_.size() < target_.value() && now < retry_at_) wake = std::min(wake, retry_at_);
        if (wake == Clock::time_point::max()) {
          cv_.wait(lock);
        } else {
          cv_.wait_until(lock, wake);
        }
        continue;
      }
      if (!ready_.empty() && now < last_take_ + kRefillPause) {
        cv_.wait_until(lock, last_take_ + kRefillPause);
        continue;
      }
      lock.unlock();
      auto fd = CreateOne();
      lock.lock();
      if (fd) {
        ready_.push_back(std::move(*fd));
        ++created_;
        refill_failing_ = false;
      } else if (!stopping_) {
        retry_at_ = Clock::now() + kRefillRetryDelay;
        // Once per failing streak: the cause rarely changes from one try to the next.
        if (!refill_failing_) {
          spdlog::warn("netns pool for {}: refill failed, retrying every {}s: {}", owner_,
                       std::chrono::seconds(kRefillRetryDelay).count(), fd.error().ToString());
        }
        refill_failing_ = true;
      }
    }
  }

  const NetnsPoolOptions options_;
  const std::string owner_;  // "pid N", for messages
  UniqueFd user_ns_;         // until the helper has it
  const bool join_user_ns_;
  UniqueFd pool_sock_;
  UniqueFd helper_sock_;  // until the helper is forked
  ChildProcess helper_;   // set by the thread before it reports start-up, then only read

  std::mutex helper_mu_;  // one request/reply at a time on pool_sock_

  mutable std::mutex mu_;
  std::condition_variable cv_;  // start-up done; ready_ changed; a sync create ended; stop
  std::optional<Status> started_;
  bool stopping_ = false;
  std::deque<UniqueFd> ready_;
  PoolTarget target_;
  size_t sync_creates_ = 0;  // Take() calls creating on a miss right now
  Clock::time_point retry_at_{};
  Clock::time_point last_take_{};  // of a namespace that was ready (the refill pauses after it)
  bool refill_failing_ = false;
  uint64_t taken_ = 0;
  uint64_t misses_ = 0;
  uint64_t created_ = 0;

  std::thread thread_;  // last: started after everything it uses exists
};

Result<std::unique_ptr<NetnsPool>> NetnsPool::Create(const NetnsPoolOptions& options) {
  if (options.owner_pid <= 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "netns pool: owner pid " + std::to_string(options.owner_pid) + " is not a pid");
  }
  const std::string context = "start netns pool for pid " + std::to_string(options.owner_pid);
  if (options.min_ready > options.max_ready) {
    return Fail(ErrorCode::kInvalidArgument,
                context + ": min_ready " + std::to_string(options.min_ready) +
                    " is above max_ready " + std::to_string(options.max_ready));
  }
  // Opened here, in the caller's thread, so that a missing owner fails before anything starts.
  const std::string path = "/proc/" + std::to_string(options.owner_pid) + "/ns/user";
  UniqueFd user_ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!user_ns) {
    const int err = errno;
    Error error = Error::Errno("open the owner's user namespace " + path, err);
    if (err == ENOENT) error = std::move(error).WithHint("no process with that pid");
    return Fail(std::move(error).Context(context));
  }
  auto own = IsOwnUserNamespace(user_ns.get());
  if (!own) return Fail(std::move(own).error().Context(context));
  int socks[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) != 0) {
    return FailErrno(context + ": socketpair for the netns helper");
  }
  auto impl = std::make_unique<Impl>(options, std::move(user_ns), !*own, UniqueFd(socks[0]),
                                     UniqueFd(socks[1]));
  EMBER_TRY_CTX(impl->Start(), context);
  return std::unique_ptr<NetnsPool>(new NetnsPool(std::move(impl)));
}

NetnsPool::NetnsPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NetnsPool::~NetnsPool() = default;

Result<UniqueFd> NetnsPool::Take() { return impl_->Take(); }
std::optional<UniqueFd> NetnsPool::TryTake() { return impl_->TryTake(); }
NetnsPoolStats NetnsPool::Stats() const { return impl_->Stats(); }

}  // namespace ember::sandbox
