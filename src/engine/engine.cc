#include "engine/engine.h"

#include <boost/asio/post.hpp>

#include "base/fs.h"
#include "base/log.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kTickInterval(1);
// A boot holding its gate slot longer than this stops counting against the limit: a fork boot
// takes milliseconds and a plain boot of a heavy handler a few hundred.
constexpr std::chrono::seconds kBootHoldLimit(1);

}  // namespace

const char* InvokeOutcomeName(InvokeOutcome outcome) {
  switch (outcome) {
    case InvokeOutcome::kOk:
      return "ok";
    case InvokeOutcome::kHandlerError:
      return "handler_error";
    case InvokeOutcome::kCrashed:
      return "instance_crashed";
    case InvokeOutcome::kOutOfMemory:
      return "out_of_memory";
    case InvokeOutcome::kTimeout:
      return "timeout";
    case InvokeOutcome::kStopped:
      return "instance_stopped";
    case InvokeOutcome::kNotFound:
      return "function_not_found";
    case InvokeOutcome::kQueueFull:
      return "queue_full";
    case InvokeOutcome::kQueueTimeout:
      return "queue_timeout";
    case InvokeOutcome::kBootUnavailable:
      return "boot_mode_unavailable";
    case InvokeOutcome::kBootFailed:
      return "boot_failed";
    case InvokeOutcome::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

Engine::Engine(asio::io_context& io, EngineOptions options, daemon::MetricsRegistry* metrics)
    : io_(io),
      options_(std::move(options)),
      metrics_(metrics),
      boot_pool_(options_.boot_threads),
      boot_gate_(BootGate::Create(io, options_.boot_concurrency, kBootHoldLimit)),
      restore_shells_(options_.restore_shells),
      logs_dir_(options_.launcher.data_dir + "/logs"),
      tick_(io) {}

Result<std::unique_ptr<Engine>> Engine::Create(asio::io_context& io, EngineOptions options,
                                               daemon::MetricsRegistry* metrics) {
  std::unique_ptr<Engine> engine(new Engine(io, std::move(options), metrics));
  EMBER_ASSIGN_OR_RETURN(engine->launcher_, Launcher::Create(engine->options_.launcher));
  EMBER_ASSIGN_OR_RETURN(auto store, FunctionStore::Open(engine->options_.launcher.data_dir));
  engine->store_.emplace(std::move(store));
  Engine* self = engine.get();
  self->host_.io = &io;
  self->host_.boot = [self](const BootRequest& request, auto done) {
    self->Boot(request, std::move(done));
  };
  self->host_.log = [self](Instance& instance, std::string_view text) {
    self->Log(instance, text);
  };
  self->host_.dispose = [self](const std::shared_ptr<Instance>& instance) {
    self->Dispose(instance);
  };
  self->host_.sources = [self](const FunctionVersion& function) {
    return self->SourcesFor(function);
  };
  self->host_.queue_limit = self->options_.queue_limit;
  self->host_.queue_timeout = self->options_.queue_timeout;
  self->RegisterMetrics();
  // Deployed functions survive the daemon: reload them (instances are booted on demand).
  EMBER_ASSIGN_OR_RETURN(auto stored, self->store_->List());
  for (auto& function : stored) {
    std::string name = function.manifest.name;
    self->schedulers_[name] = std::make_unique<FunctionScheduler>(
        &self->host_, FunctionVersion{function.manifest, function.version, function.code_dir});
    self->DropUnusedVersions(name);
    if (function.manifest.template_policy == TemplatePolicy::kOnDeploy) {
      self->BuildTemplate(self->schedulers_[name]->function());
    }
    const FunctionVersion& current = self->schedulers_[name]->function();
    if (PathExists(self->SnapshotPath(current))) {
      self->ReopenSnapshot(current);
    } else if (function.manifest.snapshot_policy == SnapshotPolicy::kOnDeploy) {
      self->TakeSnapshot(name, [](const Result<SnapshotView>&) {});
    }
  }
  spdlog::info("engine: {} function(s) loaded", self->schedulers_.size());
  self->ScheduleTick();
  return engine;
}

Engine::~Engine() {
  // Nothing may escape a destructor; a failure here can only be logged.
  try {
    tick_.cancel();
    schedulers_.clear();
    boot_pool_.join();
    shell_builder_.join();
    logs_.clear();
  } catch (const std::exception& e) {
    spdlog::error("engine teardown: {}", e.what());
  }
}

void Engine::Boot(const BootRequest& request, BootDone done) {
  boot_gate_->Enter([this, request, done = std::move(done)](BootSlot slot) mutable {
    // A fork boot's instance keeps the slot until its child is ready (Instance::OnReady); the
    // other modes' instances are ready when they are booted.
    auto held = std::make_shared<BootSlot>(std::move(slot));
    BootMode mode = request.mode;
    StartBoot(request, [held, mode, done = std::move(done)](
                           tl::expected<BootedInstance, BootError> result) mutable {
      if (result && mode == BootMode::kFork) result->boot_slot = std::move(*held);
      held->Release();
      done(std::move(result));
    });
  });
}

void Engine::StartBoot(const BootRequest& request, BootDone done) {
  if (request.mode == BootMode::kFork) return ForkBoot(request, std::move(done));
  if (request.mode == BootMode::kCold || request.mode == BootMode::kWarm) {
    return RestoreBoot(request, std::move(done));
  }
  asio::post(boot_pool_, [this, request, done = std::move(done)]() mutable {
    auto result =
        std::make_shared<tl::expected<BootedInstance, BootError>>(launcher_->Boot(request));
    asio::post(io_, [result, done = std::move(done)] { done(std::move(*result)); });
  });
}

void Engine::Dispose(const std::shared_ptr<Instance>& instance) {
  logs_.erase(instance->id());
  ++disposing_;
  // Reaping and returning the cgroup can take milliseconds: not on the io thread.
  auto sandbox = std::make_shared<sandbox::Sandbox>(instance->TakeSandbox());
  std::string function = instance->manifest().name;
  asio::post(boot_pool_, [this, sandbox, function] {
    if (auto destroyed = sandbox->Destroy(); !destroyed) {
      spdlog::warn("teardown of {}: {}", sandbox->id(), destroyed.error().ToString());
    }
    asio::post(io_, [this, function] {
      --disposing_;
      DropUnusedVersions(function);
    });
  });
}

void Engine::Log(Instance& instance, std::string_view text) {
  auto it = logs_.find(instance.id());
  if (it == logs_.end()) {
    const std::string& function = instance.manifest().name;
    std::set<std::string> live;
    for (const auto& [id, sink] : logs_) live.insert(id);
    live.insert(instance.id());
    if (auto pruned = PruneLogs(logs_dir_, function, kDefaultKeptLogInstances, live); !pruned) {
      spdlog::warn("prune logs of {}: {}", function, pruned.error().ToString());
    }
    auto sink =
        LogSink::Open(InstanceLogPath(logs_dir_, function, instance.id()), options_.log_max_bytes);
    if (!sink) {
      spdlog::warn("logs of {}: {}", instance.id(), sink.error().ToString());
      return;
    }
    it = logs_.emplace(instance.id(), std::make_unique<LogSink>(std::move(*sink))).first;
  }
  if (auto written = it->second->Write(text); !written) {
    spdlog::warn("logs of {}: {}", instance.id(), written.error().ToString());
  }
  // The pipe is drained after the instance died (Dispose dropped its sink): do not keep the
  // file open for an instance that is gone.
  if (!instance.alive()) logs_.erase(it);
}

void Engine::DropUnusedVersions(const std::string& function) {
  auto it = schedulers_.find(function);
  if (it == schedulers_.end()) return;
  std::set<std::string> keep = {it->second->function().version};
  for (const auto& v : it->second->VersionsInUse()) keep.insert(v);
  // A template's code stays bind-mounted in it and in its children.
  if (auto t = templates_.find(function); t != templates_.end()) keep.insert(t->second.version);
  for (const auto& [name, t] : retired_) {
    if (name == function) keep.insert(t->version());
  }
  if (auto dropped = store_->RemoveVersionsExcept(function, keep); !dropped) {
    spdlog::warn("{}", dropped.error().ToString());
  }
}

void Engine::ScheduleTick() {
  tick_.expires_after(kTickInterval);
  tick_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& [name, scheduler] : schedulers_) scheduler->Tick();
    StopIdleRetiredTemplates();
    TrimRestoreShells();
    // Keep the cgroup pool topped up off the hot path.
    asio::post(boot_pool_, [this] { (void)launcher_->FreeCgroups(); });
    ScheduleTick();
  });
}

}  // namespace ember::engine
