#include "engine/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <random>

#include "agent/protocol_template.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "sandbox/capabilities.h"
#include "sandbox/cgroup/dynmods.h"
#include "sandbox/cgroup/hierarchy.h"

namespace ember::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

// What an instance printed is kept during init up to this much (the rest is dropped, and the
// boot log says so): a handler that prints at import must not stall its own boot on a full pipe.
constexpr size_t kEarlyLogLimit = 1 << 20;

// Free pre-created cgroups kept between bursts, and at most during one.
constexpr size_t kMinFreeCgroups = 8;
constexpr size_t kMaxFreeCgroups = 128;

void DrainLog(int fd, std::string* log) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    if (log->size() < kEarlyLogLimit) {
      log->append(buf, std::min<size_t>(n, kEarlyLogLimit - log->size()));
      if (log->size() == kEarlyLogLimit) log->append("\n[ember: init output truncated]\n");
    }
  }
}

// The last few lines of what the instance printed, to explain a failed boot.
std::string LogTail(const std::string& log) {
  constexpr size_t kTail = 2000;
  std::string tail = log.size() > kTail ? log.substr(log.size() - kTail) : log;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return tail;
}

BootError Failed(Error error, std::string early_log = "") {
  return BootError{std::move(error), std::nullopt, std::move(early_log)};
}

}  // namespace

std::string NewInstanceId() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mutex);
  char buf[16];
  std::snprintf(buf, sizeof buf, "i-%012llx",
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return buf;
}

Result<std::unique_ptr<Launcher>> Launcher::Create(LauncherOptions options) {
  for (const char* file : {"/ember-agent", "/ember-python.so"}) {
    if (!PathExists(options.agent_dir + file)) {
      return Fail(ErrorCode::kNotFound, "ember-agent not found: " + options.agent_dir + file +
                                            " is missing (build it, or set --agent-dir)");
    }
  }
  std::unique_ptr<Launcher> launcher(new Launcher(std::move(options)));
  const LauncherOptions& o = launcher->options_;
  EMBER_TRY(MakeDirs(o.run_dir + "/staging"));
  EMBER_ASSIGN_OR_RETURN(auto store, image::Store::Open(o.data_dir, /*maintain=*/false));
  launcher->store_.emplace(std::move(store));
  if (auto cleaned = image::CleanupStaleMounts(o.run_dir, std::chrono::seconds(0)); !cleaned) {
    spdlog::warn("{}", cleaned.error().ToString());
  }
  EMBER_ASSIGN_OR_RETURN(auto hierarchy, cgroup::DetectHierarchy());
  if (auto favored = cgroup::EnsureFavorDynmods(hierarchy); !favored) {
    spdlog::warn("cgroup moves stay slow: {}", favored.error().ToString());
  }
  cgroup::PoolOptions pool_options;
  pool_options.name = o.cgroup_name;
  pool_options.lock_dir = o.run_dir + "/cgroups";
  pool_options.exclusive = true;
  EMBER_ASSIGN_OR_RETURN(auto general, OpenCgroupPool(hierarchy, pool_options));
  launcher->cgroups_.emplace(std::move(general));
  if (hierarchy.version == cgroup::Version::kV1) {
    pool_options.name = cgroup::ForkPoolName(o.cgroup_name);
    pool_options.lock_dir = o.run_dir + "/cgroups-fork";
    pool_options.memory = false;
    EMBER_ASSIGN_OR_RETURN(auto fork, OpenCgroupPool(hierarchy, pool_options));
    launcher->fork_cgroups_.emplace(std::move(fork));
  }
  EMBER_ASSIGN_OR_RETURN(launcher->seccomp_, sandbox::LoadSeccomp(sandbox::SeccompPolicy::kStrict,
                                                                  o.run_dir + "/seccomp"));
  EMBER_ASSIGN_OR_RETURN(
      launcher->template_seccomp_,
      sandbox::LoadSeccomp(sandbox::SeccompPolicy::kTemplate, o.run_dir + "/seccomp"));
  EMBER_ASSIGN_OR_RETURN(launcher->cap_last_cap_, sandbox::ReadCapLastCap());
  return launcher;
}

Launcher::~Launcher() { Shutdown(); }

void Launcher::Shutdown() {
  std::lock_guard lock(mutex_);
  images_.clear();
}

Result<Launcher::CgroupPool> Launcher::OpenCgroupPool(const cgroup::Hierarchy& hierarchy,
                                                      cgroup::PoolOptions options) {
  options.target_free = kMinFreeCgroups;
  EMBER_ASSIGN_OR_RETURN(auto pool, cgroup::Pool::Open(hierarchy, options));
  // Slots a dead daemon held: kill what is left in them and make them free again.
  if (auto reset = pool.CleanupStale(); !reset) {
    spdlog::warn("reset stale cgroups of {}: {}", options.name, reset.error().ToString());
  } else if (*reset > 0) {
    spdlog::info("reset {} cgroup(s) of {} left by a previous daemon", *reset, options.name);
  }
  if (auto filled = pool.Fill(); !filled) {
    spdlog::warn("fill cgroup pool {}: {}", options.name, filled.error().ToString());
  }
  return CgroupPool{std::move(pool), sandbox::PoolTarget(kMinFreeCgroups, kMaxFreeCgroups,
                                                         std::chrono::seconds(30), Clock::now())};
}

Result<size_t> Launcher::FreeCgroups() {
  std::lock_guard lock(mutex_);
  size_t made = 0;
  for (auto* pool : {&cgroups_, &fork_cgroups_}) {
    if (!*pool) continue;
    (*pool)->target.OnTick(Clock::now());
    (*pool)->pool.set_target_free((*pool)->target.value());
    EMBER_ASSIGN_OR_RETURN(size_t filled, (*pool)->pool.Fill());
    made += filled;
  }
  return made;
}

Result<size_t> Launcher::CountFreeCgroups() {
  std::lock_guard lock(mutex_);
  if (!cgroups_) return size_t{0};
  return cgroups_->pool.CountFree();
}

Result<std::string> Launcher::ImageLowerDir(const std::string& image_name) {
  std::lock_guard lock(mutex_);
  EMBER_ASSIGN_OR_RETURN(auto record, store_->Get(image_name));
  auto it = images_.find(record.digest);
  if (it == images_.end()) {
    EMBER_ASSIGN_OR_RETURN(auto lease, image::AcquireMount(record, options_.ids, options_.run_dir));
    it = images_.emplace(record.digest, std::move(lease)).first;
  }
  return it->second.lower_dir();
}

Result<cgroup::Lease> Launcher::ClaimCgroup(const Manifest& manifest, CgroupPool& from) {
  cgroup::Lease lease;
  {
    std::lock_guard lock(mutex_);
    bool created = false;
    EMBER_ASSIGN_OR_RETURN(lease, from.pool.Claim(&created));
    from.target.OnTake(Clock::now(), created);
  }
  sandbox::CgroupLimits limits;
  limits.memory_bytes = manifest.memory_bytes;
  limits.cpus = manifest.cpus;
  limits.pids = manifest.pids;
  EMBER_TRY_CTX(lease.Apply(limits), "apply the limits of function " + manifest.name);
  return lease;
}

Result<sandbox::SandboxSpec> Launcher::BuildSpec(const BootRequest& request,
                                                 const std::string& lower_dir) {
  const Manifest& m = request.manifest;
  sandbox::SandboxSpec spec;
  spec.id = request.instance_id;
  spec.hostname = request.instance_id;
  spec.lower_dirs = {lower_dir};
  spec.tmpfs_size = options_.tmpfs_size;
  spec.ids = options_.ids;
  spec.network = m.network;
  spec.rlimits = sandbox::DefaultRlimits();
  spec.binds = {{options_.agent_dir, kAgentMountPoint}, {request.code_dir, kCodeMountPoint}};
  spec.argv = {std::string(kAgentMountPoint) + "/ember-agent"};
  spec.env = sandbox::DefaultEnv();
  spec.env.push_back("PYTHONDONTWRITEBYTECODE=1");
  spec.env.push_back("PYTHONUNBUFFERED=1");
  spec.env.push_back("EMBER_FUNCTION=" + m.name);
  spec.env.push_back("EMBER_INSTANCE=" + request.instance_id);
  for (const auto& [key, value] : m.env) spec.env.push_back(key + "=" + value);
  spec.workdir = kCodeMountPoint;
  spec.fork_template = request.fork_template;
  return spec;
}

agent::InitRequest Launcher::MakeInit(const BootRequest& request,
                                      const sandbox::SandboxSpec& spec) const {
  const Manifest& m = request.manifest;
  agent::InitRequest init;
  init.function = m.name;
  init.runtime = RuntimeName(m.runtime);
  init.handler = m.handler;
  init.code_dir = kCodeMountPoint;
  init.memory_limit_bytes = m.memory_bytes;
  init.concurrency = m.concurrency;
  init.timeout_ms = static_cast<uint64_t>(m.timeout.count());
  init.warmup_event = m.warmup.value_or("");
  if (request.fork_template) {
    // The children get what a plain-boot instance of the function gets.
    agent::TemplateSpec t;
    t.tmpfs_size = spec.tmpfs_size;
    t.tmp_size = spec.tmp_size;
    t.uid = spec.uid;
    t.gid = spec.gid;
    t.workdir = spec.workdir;
    for (const auto& bind : spec.binds) t.binds.push_back(bind.target);
    for (const auto& l : spec.rlimits) t.rlimits.push_back({l.resource, l.soft, l.hard});
    t.cap_last_cap = cap_last_cap_;
    t.seccomp.assign(reinterpret_cast<const char*>(seccomp_.instructions.data()),
                     seccomp_.instructions.size() * sizeof(sock_filter));
    init.template_spec = agent::EncodeTemplateSpec(t);
  }
  return init;
}

Result<ForkResources> Launcher::PrepareFork(const Manifest& manifest,
                                            const std::string& shared_memory_cgroup) {
  ForkResources r;
  bool share_memory = fork_cgroups_ && !shared_memory_cgroup.empty();
  EMBER_ASSIGN_OR_RETURN(r.cgroup,
                         ClaimCgroup(manifest, share_memory ? *fork_cgroups_ : *cgroups_));
  EMBER_ASSIGN_OR_RETURN(r.cgroup_procs, r.cgroup.OpenProcsFiles());
  if (share_memory) {
    EMBER_ASSIGN_OR_RETURN(
        UniqueFd memory, OpenFile(shared_memory_cgroup + "/cgroup.procs", O_WRONLY | O_CLOEXEC, 0));
    r.cgroup_procs.push_back(std::move(memory));
  }
  int socks[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) != 0) {
    return FailErrno("create the control socket of a fork-boot instance");
  }
  r.control.reset(socks[0]);
  r.control_child.reset(socks[1]);
  return r;
}

Result<Launcher::Prepared> Launcher::Prepare(const BootRequest& request) {
  EMBER_ASSIGN_OR_RETURN(std::string lower_dir, ImageLowerDir(request.manifest.image));
  EMBER_ASSIGN_OR_RETURN(auto cgroup, ClaimCgroup(request.manifest, *cgroups_));
  EMBER_ASSIGN_OR_RETURN(auto spec, BuildSpec(request, lower_dir));
  return Prepared{std::move(spec), std::move(cgroup)};
}

Result<BootedInstance> Launcher::StartInstance(const sandbox::SandboxSpec& spec,
                                               cgroup::Lease cgroup,
                                               const sandbox::BpfProgram* seccomp,
                                               std::array<int, 3> restore_fds) {
  int socks[2];
  int pipe_fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) != 0) {
    return FailErrno("create the agent's socket");
  }
  UniqueFd control(socks[0]), agent_end(socks[1]);
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return FailErrno("create the instance's log pipe");
  UniqueFd log_read(pipe_fds[0]), log_write(pipe_fds[1]);
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  sandbox::StartOptions start_options{options_.run_dir + "/staging",
                                      seccomp,
                                      {dev_null.get(), log_write.get(), log_write.get()},
                                      agent_end.get(),
                                      {restore_fds[0], restore_fds[1], restore_fds[2]}};
  EMBER_ASSIGN_OR_RETURN(auto started,
                         sandbox::Sandbox::Start(spec, std::move(cgroup), start_options));
  return BootedInstance{std::move(started), std::move(control), std::move(log_read), "", {}};
}

tl::expected<void, BootError> Launcher::AwaitReady(BootedInstance& booted,
                                                   const BootRequest& request,
                                                   Clock::time_point deadline) {
  const Manifest& m = request.manifest;
  auto context = [&](Error e) {
    return Failed(std::move(e).Context("boot instance " + request.instance_id + " of " + m.name));
  };
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return tl::unexpected(
          Failed(Error(ErrorCode::kTimeout, "instance " + request.instance_id + " of " + m.name +
                                                ": runtime init did not finish within " +
                                                FormatDuration(options_.init_timeout)),
                 std::move(booted.early_log)));
    }
    struct pollfd fds[3] = {{booted.control.get(), POLLIN, 0},
                            {booted.log.get(), POLLIN, 0},
                            {booted.sandbox.pidfd(), POLLIN, 0}};
    int n = ::poll(fds, 3, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return tl::unexpected(context(Error::Errno("poll the agent")));
    if (fds[1].revents != 0) DrainLog(booted.log.get(), &booted.early_log);
    if (fds[0].revents != 0) {
      auto frame = agent::ReadFrame(booted.control.get());
      if (frame && frame->type == agent::FrameType::kReady) {
        booted.ready = std::move(frame->payload);
        return {};
      }
      if (frame && frame->type == agent::FrameType::kInitFailed) {
        auto info = agent::DecodeError(frame->payload);
        BootError error =
            Failed(Error(ErrorCode::kInvalidArgument,
                         "function " + m.name + " failed to initialize: " +
                             (info ? info->type + ": " + info->message : info.error().ToString())));
        if (info) error.init = std::move(*info);
        DrainLog(booted.log.get(), &booted.early_log);
        error.early_log = std::move(booted.early_log);
        return tl::unexpected(std::move(error));
      }
      if (frame) {
        return tl::unexpected(context(Error(
            ErrorCode::kCorrupt, std::string("agent sent ") + agent::FrameTypeName(frame->type) +
                                     " before it was ready")));
      }
      fds[2].revents = POLLIN;  // EOF or a broken frame: the agent is gone, say why below
    }
    if (fds[2].revents != 0) {
      DrainLog(booted.log.get(), &booted.early_log);
      auto status = booted.sandbox.Wait();
      auto oom = booted.sandbox.cgroup().OomKills();
      std::string why = oom && *oom > 0
                            ? "ran out of memory (limit " + FormatSize(m.memory_bytes) + ")"
                        : status ? "exited (" + status->Describe() + ")"
                                 : "exited";
      std::string tail = LogTail(booted.early_log);
      return tl::unexpected(Failed(
          Error(ErrorCode::kUnavailable, "instance " + request.instance_id + " of " + m.name + " " +
                                             why + " before its runtime was ready" +
                                             (tail.empty() ? "" : ": " + tail)),
          std::move(booted.early_log)));
    }
  }
}

tl::expected<BootedInstance, BootError> Launcher::Boot(const BootRequest& request) {
  const Manifest& m = request.manifest;
  auto start = Clock::now();
  auto context = [&](Error e) {
    return Failed(
        std::move(e).Context((request.fork_template ? "boot template " : "boot instance ") +
                             request.instance_id + " of " + m.name));
  };
  auto prepared = Prepare(request);
  if (!prepared) return tl::unexpected(context(prepared.error()));
  auto& [spec, cgroup] = *prepared;

  auto started =
      StartInstance(spec, std::move(cgroup), request.fork_template ? &template_seccomp_ : &seccomp_,
                    {-1, -1, -1});
  if (!started) return tl::unexpected(context(started.error()));
  BootedInstance booted = std::move(*started);
  booted.timings.sandbox = Since(start);

  auto init_start = Clock::now();
  agent::InitRequest init = MakeInit(request, spec);
  if (auto sent = agent::WriteFrame(booted.control.get(), agent::FrameType::kInit, 0,
                                    agent::EncodeInit(init));
      !sent) {
    return tl::unexpected(context(sent.error()));
  }
  ::fcntl(booted.log.get(), F_SETFL, O_NONBLOCK);
  if (auto ready = AwaitReady(booted, request, init_start + options_.init_timeout); !ready) {
    return tl::unexpected(std::move(ready).error());
  }
  booted.timings.init = Since(init_start);
  return booted;
}

}  // namespace ember::engine
