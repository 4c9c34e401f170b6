#include "cli/run_session.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "cli/command.h"
#include "image/mount.h"
#include "image/store.h"
#include "sandbox/cgroup/dynmods.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/pool.h"
#include "sandbox/seccomp.h"

namespace ember::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string SeccompCacheDir(const RunRequest& request) { return request.run_dir + "/seccomp"; }

// Everything a sandbox holds on the host, acquired in order and released in reverse.
struct Acquired {
  std::optional<cgroup::Pool> pool;
  image::MountLease image;
  sandbox::BpfProgram seccomp;
  std::optional<sandbox::Sandbox> sandbox;
  // Microseconds spent in each host-side step up to the child's release, for -v.
  std::vector<std::pair<const char*, long>> phases;
};

// Records the time since the previous mark under `name`.
class PhaseClock {
 public:
  explicit PhaseClock(std::vector<std::pair<const char*, long>>* phases) : phases_(phases) {}
  void Mark(const char* name) {
    auto now = Clock::now();
    phases_->emplace_back(
        name, std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count());
    last_ = now;
  }

 private:
  std::vector<std::pair<const char*, long>>* phases_;
  Clock::time_point last_ = Clock::now();
};

Result<Acquired> Acquire(const RunRequest& request) {
  Acquired acquired;
  PhaseClock clock(&acquired.phases);
  EMBER_TRY(MakeDirs(request.run_dir + "/staging"));
  EMBER_ASSIGN_OR_RETURN(auto store, image::Store::Open(request.data_dir, /*maintain=*/false));
  EMBER_ASSIGN_OR_RETURN(auto record, store.Get(request.image));
  clock.Mark("store");
  EMBER_ASSIGN_OR_RETURN(acquired.image, image::AcquireMount(record, request.spec.ids,
                                                             request.run_dir, ImageLinger()));
  clock.Mark("image mount");
  EMBER_ASSIGN_OR_RETURN(acquired.seccomp, sandbox::LoadSeccomp(sandbox::SeccompPolicy::kStrict,
                                                                SeccompCacheDir(request)));
  clock.Mark("seccomp");
  sandbox::SandboxSpec spec = request.spec;
  spec.lower_dirs = {acquired.image.lower_dir()};
  sandbox::StartOptions options{request.run_dir + "/staging", &acquired.seccomp};
  options.apply_limits = true;
  EMBER_ASSIGN_OR_RETURN(auto launched, sandbox::Sandbox::Launch(spec, options));
  clock.Mark("launch");

  // The child now sets up its network namespace (≈0.6 ms); the cgroup is found, claimed and,
  // in Release, attached and limited meanwhile. The child runs nothing but ember's setup until
  // then (sandbox.h).
  EMBER_ASSIGN_OR_RETURN(auto hierarchy, cgroup::DetectHierarchy());
  if (auto favored = cgroup::EnsureFavorDynmods(hierarchy); !favored) {
    spdlog::warn("cgroup moves stay slow: {}", favored.error().ToString());
  }
  cgroup::PoolOptions pool_options;
  pool_options.name = CgroupName();
  pool_options.lock_dir = request.run_dir + "/cgroups";
  EMBER_ASSIGN_OR_RETURN(auto pool, cgroup::Pool::Open(hierarchy, pool_options));
  EMBER_ASSIGN_OR_RETURN(auto cgroup, pool.Claim());
  acquired.pool.emplace(std::move(pool));
  clock.Mark("cgroup, during the child's netns");
  EMBER_ASSIGN_OR_RETURN(auto started, std::move(launched).Release(std::move(cgroup)));
  acquired.sandbox.emplace(std::move(started));
  return acquired;
}

// Upkeep for later runs, done while the command runs (ember only waits then) instead of before
// the start or after the exit, where it would add to every run's time: unmount images idle past
// their linger (ours is leased, so it stays), and top the cgroup pool up. Our slot is still
// claimed, so the pool is filled to one free slot fewer than its target: after our release it
// holds exactly as many as a fill after the release would leave, and the next start never
// creates a cgroup.
void MaintainHost(const RunRequest& request, cgroup::Pool& pool) {
  if (auto cleaned = image::CleanupStaleMounts(request.run_dir, ImageLinger()); !cleaned) {
    spdlog::warn("{}", cleaned.error().ToString());
  }
  const size_t target = cgroup::PoolOptions{}.target_free;
  pool.set_target_free(target > 0 ? target - 1 : 0);
  if (auto filled = pool.Fill(); !filled) {
    spdlog::warn("refill cgroup pool: {}", filled.error().ToString());
  }
  pool.set_target_free(target);
}

// Signals ember forwards to the sandbox instead of dying from them.
sigset_t ForwardedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, sig);
  return set;
}

struct Outcome {
  ExitStatus status;
  bool timed_out = false;
  int stop_signal = 0;       // the signal that asked the sandbox to stop, if any
  bool stop_forced = false;  // it did not stop within the stop timeout and was killed
};

// Waits for the sandbox's init to exit, forwarding signals and enforcing the timeout. The
// command is pid 1 of its namespace, which ignores every signal it has no handler for (as in
// `docker run` without --init), so a forwarded INT/TERM/HUP/QUIT is followed by SIGKILL if the
// sandbox has not stopped after `stop_timeout`; a second Ctrl-C kills at once.
Result<Outcome> Supervise(sandbox::Sandbox& sandbox, int signal_fd,
                          std::optional<std::chrono::milliseconds> timeout,
                          std::chrono::milliseconds stop_timeout) {
  auto deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
  auto kill_at = Clock::time_point::max();
  Outcome outcome;
  for (;;) {
    auto next = std::min(outcome.timed_out ? Clock::time_point::max() : deadline, kill_at);
    int wait_ms = -1;
    if (next != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    struct pollfd fds[2] = {{sandbox.pidfd(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno != EINTR) return FailErrno("poll sandbox " + sandbox.id());
    if (n == 0) {
      if (kill_at == next) {
        outcome.stop_forced = true;
        kill_at = Clock::time_point::max();
      } else {
        outcome.timed_out = true;
      }
      EMBER_TRY(sandbox.Signal(SIGKILL));
      continue;
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info {};
      if (::read(signal_fd, &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (outcome.stop_signal == SIGINT && sig == SIGINT) sig = SIGKILL;
        if (outcome.stop_signal == 0) {
          outcome.stop_signal = sig;
          kill_at = Clock::now() + stop_timeout;
        }
        (void)sandbox.Signal(sig);
      }
    }
    if (fds[0].revents & POLLIN) {
      EMBER_ASSIGN_OR_RETURN(outcome.status, sandbox.Wait());
      return outcome;
    }
  }
}

void PrintTimings(const RunRequest& request, const Acquired& acquired) {
  // The compiled filter the sandbox got (bench/peers/tools.py's full-mandate floor installs it).
  std::fprintf(stderr, "ember: seccomp filter %s (%zu instructions)\n",
               sandbox::SeccompCachePath(SeccompCacheDir(request), acquired.seccomp).c_str(),
               acquired.seccomp.instructions.size());
  std::string host;
  for (const auto& [name, us] : acquired.phases) {
    host += std::string(host.empty() ? "" : ", ") + name + " " + std::to_string(us);
  }
  std::fprintf(stderr, "ember: host side (us): %s\n", host.c_str());
  const sandbox::Sandbox& sandbox = *acquired.sandbox;
  const auto& t = sandbox.timings();
  std::fprintf(stderr,
               "ember: sandbox %s pid %d started in %ldus (plan %ld, clone %ld, "
               "idmap+cgroup %ld, setup+exec %ld)\n",
               sandbox.id().c_str(), sandbox.pid(), static_cast<long>(t.total.count()),
               static_cast<long>(t.plan.count()), static_cast<long>(t.clone.count()),
               static_cast<long>(t.id_map_and_cgroup.count()),
               static_cast<long>(t.child_setup.count()));
}

int ExitCodeForStartError(const Error& error) {
  if (error.code() != ErrorCode::kExecFailed) return kRunEmberError;
  return error.sys_errno() == ENOENT ? kRunNotFound : kRunNotExecutable;
}

}  // namespace

int RunInSandbox(const RunRequest& request) {
  auto started = Clock::now();
  // Block the forwarded signals before the sandbox exists, so none is lost in between; the
  // child unblocks nothing itself, so the mask is restored for it by the exec (see child.cc).
  sigset_t forwarded = ForwardedSignals();
  sigset_t previous;
  ::sigprocmask(SIG_BLOCK, &forwarded, &previous);
  int signal_fd = ::signalfd(-1, &forwarded, SFD_CLOEXEC);

  auto acquired = Acquire(request);
  if (!acquired) {
    std::fprintf(stderr, "ember: %s\n", acquired.error().ToString().c_str());
    ::close(signal_fd);
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    return ExitCodeForStartError(acquired.error());
  }
  sandbox::Sandbox& sandbox = *acquired->sandbox;
  auto ran = Clock::now();
  MaintainHost(request, *acquired->pool);
  if (request.verbose) PrintTimings(request, *acquired);

  auto outcome = Supervise(sandbox, signal_fd, request.timeout, request.stop_timeout);
  auto exited = Clock::now();
  ::close(signal_fd);
  if (!outcome) {
    std::fprintf(stderr, "ember: %s\n", outcome.error().ToString().c_str());
    return kRunEmberError;
  }
  int code = outcome->status.ShellCode();
  auto oom_kills = sandbox.cgroup().OomKills();
  auto layer = sandbox.WritableLayer();
  if (outcome->timed_out) {
    std::fprintf(stderr, "ember: %s timed out after %s and was killed\n", sandbox.id().c_str(),
                 FormatDuration(*request.timeout).c_str());
    code = kRunTimedOut;
  } else if (outcome->stop_forced) {
    std::fprintf(stderr, "ember: %s did not stop within %s of SIG%s and was killed\n",
                 sandbox.id().c_str(), FormatDuration(request.stop_timeout).c_str(),
                 sigabbrev_np(outcome->stop_signal));
  } else if (oom_kills && *oom_kills > 0) {
    std::fprintf(
        stderr, "ember: %s ran out of memory: the OOM killer stopped %s (memory limit %s)\n",
        sandbox.id().c_str(), outcome->status.signaled ? "the command" : "a process of the command",
        FormatSize(*request.spec.limits.memory_bytes).c_str());
  }
  if (layer && layer->full) {
    std::fprintf(stderr,
                 "ember: %s filled its writable layer (%s, --tmpfs-size): writes failed with "
                 "ENOSPC\n",
                 sandbox.id().c_str(), FormatSize(request.spec.tmpfs_size).c_str());
  }
  if (auto destroyed = sandbox.Destroy(); !destroyed) {
    spdlog::warn("teardown of {}: {}", sandbox.id(), destroyed.error().ToString());
  }
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (request.verbose) {
    auto us = [](auto d) {
      return static_cast<long>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    std::fprintf(stderr, "ember: %s: up %ldus, command %ldus, teardown %ldus\n",
                 sandbox.id().c_str(), us(ran - started), us(exited - ran),
                 us(Clock::now() - exited));
  }
  return code;
}

}  // namespace ember::cli
