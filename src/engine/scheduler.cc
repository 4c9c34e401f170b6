#include "engine/scheduler.h"

#include <algorithm>
#include <random>

#include "base/log.h"
#include "base/units.h"

namespace ember::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d);
}

InvokeReply Refused(InvokeOutcome outcome, std::string request_id, std::string message) {
  InvokeReply reply;
  reply.outcome = outcome;
  reply.request_id = std::move(request_id);
  reply.message = std::move(message);
  return reply;
}

InvokeOutcome FromInstance(InvokeStatus status) {
  switch (status) {
    case InvokeStatus::kOk:
      return InvokeOutcome::kOk;
    case InvokeStatus::kHandlerError:
      return InvokeOutcome::kHandlerError;
    case InvokeStatus::kCrashed:
      return InvokeOutcome::kCrashed;
    case InvokeStatus::kOutOfMemory:
      return InvokeOutcome::kOutOfMemory;
    case InvokeStatus::kTimeout:
      return InvokeOutcome::kTimeout;
    case InvokeStatus::kStopped:
      return InvokeOutcome::kStopped;
  }
  return InvokeOutcome::kCrashed;
}

}  // namespace

std::string NewRequestId() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "req-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

FunctionScheduler::FunctionScheduler(SchedulerHost* host, FunctionVersion function)
    : host_(host), function_(std::move(function)) {}

FunctionScheduler::~FunctionScheduler() {
  *alive_ = false;
  for (auto& instance : instances_)
    instance->Stop("function " + function_.manifest.name + " was removed");
}

BootSources FunctionScheduler::Sources() const {
  return host_->sources ? host_->sources(function_) : BootSources{};
}

BootMode FunctionScheduler::DefaultMode() const {
  auto mode = PlanBoot(Sources(), std::nullopt);
  return mode ? *mode : BootMode::kPlain;
}

size_t FunctionScheduler::Live() const {
  return booting_ + std::count_if(instances_.begin(), instances_.end(),
                                  [](const auto& i) { return !i->stopping(); });
}

std::shared_ptr<Instance> FunctionScheduler::PickFree() const {
  std::shared_ptr<Instance> best;
  for (const auto& instance : instances_) {
    if (!instance->accepting() || instance->version() != function_.version) continue;
    // Most recently used first, so that the least used ones go idle and age out.
    if (!best || instance->last_used() > best->last_used()) best = instance;
  }
  return best;
}

void FunctionScheduler::Invoke(InvokeCall call) {
  Queued queued{std::move(call), NewRequestId(), Clock::now(), false};
  const Manifest& m = function_.manifest;
  if (queued.call.boot) {
    auto mode = PlanBoot(Sources(), queued.call.boot);
    if (!mode) {
      queued.call.done(
          Refused(InvokeOutcome::kBootUnavailable, queued.request_id, mode.error().message()));
      return;
    }
    if (Live() >= m.max_instances) {
      // Make room by stopping an idle instance; a forced boot never waits for a busy one.
      for (auto& instance : instances_) {
        if (!instance->stopping() && instance->in_flight() == 0) {
          instance->Stop("stopped to make room for a forced " + std::string(BootModeName(*mode)) +
                         " boot");
          break;
        }
      }
    }
    if (Live() >= m.max_instances) {
      queued.call.done(Refused(InvokeOutcome::kQueueFull, queued.request_id,
                               "all " + std::to_string(m.max_instances) + " instances of " +
                                   m.name + " are busy: cannot boot another (max_instances)"));
      return;
    }
    queued.fresh = true;
    StartBoot(std::move(queued), *mode);
    return;
  }
  if (auto instance = PickFree()) {
    Run(instance, std::move(queued), false);
    return;
  }
  if (queue_.size() >= host_->queue_limit) {
    queued.call.done(Refused(InvokeOutcome::kQueueFull, queued.request_id,
                             "function " + m.name + " is at max_instances (" +
                                 std::to_string(m.max_instances) + ") and its queue is full (" +
                                 std::to_string(host_->queue_limit) + " waiting)"));
    return;
  }
  queue_.push_back(std::move(queued));
  size_t waiting =
      std::count_if(queue_.begin(), queue_.end(), [](const Queued& q) { return !q.fresh; });
  if (Live() < m.max_instances && waiting > booting_ * m.concurrency) {
    StartBoot(std::nullopt, DefaultMode());
  }
}

void FunctionScheduler::Run(const std::shared_ptr<Instance>& instance, Queued queued,
                            bool booted_for_it) {
  auto dispatched = Clock::now();
  InvokeReply base;
  base.request_id = queued.request_id;
  base.instance_id = instance->id();
  base.boot_mode = instance->boot_mode();
  base.timings.queued = Micros(dispatched - queued.arrived);
  auto arrived = queued.arrived;
  auto done = std::move(queued.call.done);
  // Read at the answer: a fork-boot child finishes its setup after the invocation was sent.
  std::weak_ptr<Instance> weak = instance;
  instance->Invoke(
      queued.request_id, std::move(queued.call.event),
      [base, arrived, weak, booted_for_it, done = std::move(done)](InvokeResult result) mutable {
        if (auto booted = weak.lock(); booted && booted_for_it) {
          base.timings.sandbox = booted->boot_timings().sandbox;
          base.timings.init = booted->boot_timings().init;
        }
        base.outcome = FromInstance(result.status);
        base.body = std::move(result.body);
        base.error = std::move(result.error);
        base.message = std::move(result.message);
        base.timings.handler = result.handler;
        base.timings.total = Micros(Clock::now() - arrived);
        done(std::move(base));
      });
}

void FunctionScheduler::StartBoot(std::optional<Queued> dedicated, BootMode mode) {
  ++booting_;
  std::string id = NewInstanceId();
  BootRequest request{id, function_.manifest, function_.code_dir, mode};
  std::weak_ptr<bool> alive = alive_;
  std::string version = function_.version;
  auto shared_dedicated = std::make_shared<std::optional<Queued>>(std::move(dedicated));
  host_->boot(request, [this, alive, id, mode, version,
                        shared_dedicated](tl::expected<BootedInstance, BootError> result) {
    auto token = alive.lock();
    if (!token || !*token) return;  // the function is gone; the boot's sandbox dies with `result`
    OnBooted(std::move(result), id, mode, std::move(*shared_dedicated), version);
  });
}

void FunctionScheduler::OnBooted(tl::expected<BootedInstance, BootError> result,
                                 const std::string& instance_id, BootMode mode,
                                 std::optional<Queued> dedicated, const std::string& version) {
  --booting_;
  const std::string& name = function_.manifest.name;
  if (host_->booted) {
    auto took =
        result ? result->timings.sandbox + result->timings.init : std::chrono::microseconds(0);
    host_->booted(name, mode, result.has_value(), took);
  }
  if (!result) {
    BootError& failure = result.error();
    spdlog::warn("{}", failure.error.ToString());
    InvokeReply reply;
    reply.outcome = InvokeOutcome::kBootFailed;
    reply.message = failure.error.ToString();
    if (failure.init) reply.error = *failure.init;
    auto fail = [&](Queued& q) {
      InvokeReply r = reply;
      r.request_id = q.request_id;
      q.call.done(std::move(r));
    };
    if (dedicated) {
      fail(*dedicated);
      return;
    }
    // Nothing else can serve the waiting invocations: they would all fail the same way.
    bool others = booting_ > 0 || std::any_of(instances_.begin(), instances_.end(),
                                              [](const auto& i) { return !i->stopping(); });
    // Otherwise only the oldest waiting invocation pays for this boot.
    std::deque<Queued> keep;
    bool failed_one = false;
    for (auto& q : queue_) {
      if (!q.fresh && (!others || !failed_one)) {
        fail(q);
        failed_one = true;
      } else {
        keep.push_back(std::move(q));
      }
    }
    queue_ = std::move(keep);
    return;
  }
  auto instance = AddInstance(std::move(*result), mode, instance_id);
  if (version != function_.version) {
    instance->Stop("function " + name + " was redeployed while this instance booted");
  }
  if (dedicated) {
    Run(instance, std::move(*dedicated), true);
    return;
  }
  fresh_boot_timings_.insert(instance_id);
  Dispatch();
}

void FunctionScheduler::Adopt(BootedInstance booted, BootMode mode,
                              const std::string& instance_id) {
  AddInstance(std::move(booted), mode, instance_id);
  fresh_boot_timings_.insert(instance_id);
  Dispatch();
}

std::shared_ptr<Instance> FunctionScheduler::AddInstance(BootedInstance booted, BootMode mode,
                                                         const std::string& instance_id) {
  std::weak_ptr<bool> alive = alive_;
  SchedulerHost* host = host_;
  Instance::Hooks hooks;
  hooks.on_free = [this, alive](Instance& instance) {
    auto token = alive.lock();
    if (!token || !*token) return;
    if (instance.version() != function_.version && instance.in_flight() == 0) {
      instance.Stop("function " + function_.manifest.name + " was redeployed");
      return;
    }
    Dispatch();
  };
  hooks.on_dead = [this, alive, host](Instance& instance) {
    auto self = instance.shared_from_this();
    auto token = alive.lock();
    if (token && *token) OnDead(instance);
    host->dispose(self);
  };
  hooks.on_log = [host](Instance& instance, std::string_view text) { host->log(instance, text); };
  auto instance =
      std::make_shared<Instance>(*host_->io, instance_id, function_.version, function_.manifest,
                                 mode, std::move(booted), std::move(hooks));
  instance->Start();
  instances_.push_back(instance);
  return instance;
}

void FunctionScheduler::OnDead(Instance& instance) {
  fresh_boot_timings_.erase(instance.id());
  std::erase_if(instances_, [&](const auto& i) { return i.get() == &instance; });
  // Replace it if invocations are waiting.
  const Manifest& m = function_.manifest;
  size_t waiting =
      std::count_if(queue_.begin(), queue_.end(), [](const Queued& q) { return !q.fresh; });
  if (waiting > 0 && Live() < m.max_instances && waiting > booting_ * m.concurrency) {
    StartBoot(std::nullopt, DefaultMode());
  }
  Dispatch();
}

void FunctionScheduler::Dispatch() {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->fresh) {
      ++it;
      continue;
    }
    auto instance = PickFree();
    if (!instance) return;
    Queued queued = std::move(*it);
    it = queue_.erase(it);
    bool booted_for_it = fresh_boot_timings_.erase(instance->id()) > 0;
    Run(instance, std::move(queued), booted_for_it);
  }
}

void FunctionScheduler::Update(FunctionVersion function) {
  function_ = std::move(function);
  for (auto& instance : instances_) {
    if (instance->version() != function_.version && instance->in_flight() == 0) {
      instance->Stop("function " + function_.manifest.name + " was redeployed");
    }
  }
}

void FunctionScheduler::StopAll(const std::string& reason, InvokeOutcome outcome) {
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& q : queue) q.call.done(Refused(outcome, q.request_id, reason));
  for (auto& instance : instances_) instance->Stop(reason);
}

void FunctionScheduler::Tick() {
  auto now = Clock::now();
  const Manifest& m = function_.manifest;
  for (auto& instance : instances_) {
    if (!instance->stopping() && instance->in_flight() == 0 &&
        now - instance->last_used() >= m.keep_alive) {
      instance->Stop("idle for longer than keep_alive (" + FormatDuration(m.keep_alive) + ")");
    }
  }
  while (!queue_.empty() && now - queue_.front().arrived >= host_->queue_timeout) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    q.call.done(Refused(InvokeOutcome::kQueueTimeout, q.request_id,
                        "no instance of " + m.name + " became free within " +
                            FormatDuration(host_->queue_timeout)));
  }
}

FunctionScheduler::Counts FunctionScheduler::counts() const {
  Counts c;
  c.booting = booting_;
  c.queued = queue_.size();
  for (const auto& instance : instances_) {
    if (!instance->alive()) continue;
    (instance->in_flight() > 0 ? c.busy : c.idle)++;
  }
  return c;
}

std::shared_ptr<Instance> FunctionScheduler::Find(const std::string& instance_id) const {
  for (const auto& instance : instances_) {
    if (instance->id() == instance_id) return instance;
  }
  return nullptr;
}

std::vector<std::string> FunctionScheduler::VersionsInUse() const {
  std::vector<std::string> versions;
  for (const auto& instance : instances_) versions.push_back(instance->version());
  return versions;
}

}  // namespace ember::engine
