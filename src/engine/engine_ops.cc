// Engine: invocations, instances, logs, metrics and shutdown.
#include <boost/asio/post.hpp>

#include "base/log.h"
#include "engine/engine.h"

namespace ember::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1e6; }

}  // namespace

void Engine::Invoke(InvokeCall call) {
  auto refuse = [&](InvokeOutcome outcome, std::string message) {
    InvokeReply reply;
    reply.outcome = outcome;
    reply.request_id = NewRequestId();
    reply.message = std::move(message);
    CountInvocation(call.function, reply);
    call.done(std::move(reply));
  };
  if (shutting_down_) return refuse(InvokeOutcome::kShuttingDown, "the daemon is stopping");
  auto it = schedulers_.find(call.function);
  if (it == schedulers_.end()) {
    return refuse(InvokeOutcome::kNotFound, "no function named '" + call.function + "'");
  }
  if (const FunctionVersion& current = it->second->function();
      current.manifest.template_policy == TemplatePolicy::kOnFirstInvoke &&
      !templates_.count(current.manifest.name)) {
    BuildTemplate(current);
  }
  std::string function = call.function;
  call.done = [this, function, done = std::move(call.done)](InvokeReply reply) {
    CountInvocation(function, reply);
    MaybeRecordWorkingSet(function, reply);
    bool restored = reply.boot_mode == BootMode::kCold || reply.boot_mode == BootMode::kWarm;
    bool fresh = reply.timings.sandbox.count() > 0;  // 0: the instance was reused
    done(std::move(reply));
    // A restored instance has answered its first invocation: the shell it used can be replaced
    // now without slowing that answer down (engine_snapshots.cc, RestoreBoot).
    if (restored && fresh) {
      if (auto s = schedulers_.find(function); s != schedulers_.end()) {
        RefillRestoreShells(s->second->function());
      }
    }
  };
  it->second->Invoke(std::move(call));
}

size_t Engine::instance_count() const {
  size_t count = 0;
  for (const auto& [name, scheduler] : schedulers_) count += scheduler->instances().size();
  return count;
}

std::vector<InstanceView> Engine::ListInstances() const {
  std::vector<InstanceView> views;
  for (const auto& [name, scheduler] : schedulers_) {
    for (const auto& i : scheduler->instances()) {
      InstanceView v;
      v.id = i->id();
      v.function = name;
      v.version = i->version();
      v.state = i->stopping() ? "stopping" : i->in_flight() > 0 ? "busy" : "idle";
      v.boot_mode = i->boot_mode();
      v.pid = i->pid();
      v.started = i->started();
      v.last_used = i->last_used_wall();
      v.invocations = i->invocations();
      v.in_flight = i->in_flight();
      views.push_back(std::move(v));
    }
  }
  return views;
}

Status Engine::StopInstance(const std::string& id) {
  for (const auto& [name, scheduler] : schedulers_) {
    if (auto instance = scheduler->Find(id)) {
      instance->Stop("instance " + id + " was deleted through the API");
      return Ok();
    }
  }
  return Fail(ErrorCode::kNotFound, "no instance with id '" + id + "'");
}

Result<LogRead> Engine::ReadLogs(const std::string& function, const LogReadOptions& options) const {
  if (!schedulers_.count(function)) {
    return Fail(ErrorCode::kNotFound, "no function named '" + function + "'");
  }
  return ReadLog(logs_dir_, function, options);
}

void Engine::Shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
  shutting_down_ = true;
  auto deadline = Clock::now() + grace;
  auto timer = std::make_shared<boost::asio::steady_timer>(io_);
  // Phase 1: let invocations in flight finish (bounded by `grace`).
  // Phase 2: stop every instance and wait until all are torn down.
  auto step = std::make_shared<std::function<void()>>();
  auto stopped = std::make_shared<bool>(false);
  *step = [this, deadline, timer, step, stopped, done = std::move(done)] {
    bool busy = false;
    for (const auto& [name, scheduler] : schedulers_) {
      for (const auto& i : scheduler->instances()) busy = busy || i->in_flight() > 0;
    }
    if (!*stopped && (!busy || Clock::now() >= deadline)) {
      *stopped = true;
      for (auto& [name, scheduler] : schedulers_) {
        scheduler->StopAll("the daemon is stopping", InvokeOutcome::kShuttingDown);
      }
      StopAllTemplates();
      DestroyShells(restore_shells_.DisableAll());
    }
    bool templates_alive = !retired_.empty();
    for (const auto& [name, slot] : templates_) templates_alive |= slot.live != nullptr;
    if (*stopped && instance_count() == 0 && disposing_ == 0 && shell_tasks_ == 0 &&
        !templates_alive) {
      tick_.cancel();
      launcher_->Shutdown();
      spdlog::info("engine: every instance stopped");
      // Break the self-reference once this call has returned, not while it runs.
      boost::asio::post(io_, [step] { *step = nullptr; });
      done();
      return;
    }
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([step](boost::system::error_code) {
      if (*step) (*step)();
    });
  };
  (*step)();
}

void Engine::RegisterMetrics() {
  if (metrics_ == nullptr) return;
  auto& boots = metrics_->AddCounter("ember_boots_total", "Instance boots, by mode and result.");
  auto& boot_seconds = metrics_->AddHistogram("ember_boot_duration_seconds",
                                              "Sandbox start plus runtime init, by boot mode.");
  host_.booted = [&boots, &boot_seconds](const std::string& function, BootMode mode, bool ok,
                                         std::chrono::microseconds took) {
    boots
        .With({{"function", function},
               {"mode", BootModeName(mode)},
               {"result", ok ? "ok" : "failed"}})
        .Inc();
    if (ok) boot_seconds.With({{"mode", BootModeName(mode)}}).Observe(Seconds(took));
  };
  metrics_->AddCounter("ember_invocations_total", "Invocations answered, by outcome.");
  metrics_->AddHistogram("ember_invocation_duration_seconds",
                         "Time from request to answer, including any boot.");
  auto& instances = metrics_->AddGauge("ember_instances", "Live instances, by state.");
  auto& queued = metrics_->AddGauge("ember_queued_invocations", "Invocations waiting.");
  auto& functions = metrics_->AddGauge("ember_functions", "Deployed functions.");
  auto& cgroups = metrics_->AddGauge("ember_cgroup_pool_free", "Pre-created cgroups ready.");
  auto& templates = metrics_->AddGauge("ember_templates", "Fork-boot templates, by state.");
  auto& children = metrics_->AddGauge("ember_template_children", "Live children of a template.");
  auto& netns_ready =
      metrics_->AddGauge("ember_netns_pool_ready", "Network namespaces ready, per template.");
  auto& netns_target = metrics_->AddGauge(
      "ember_netns_pool_target", "What a template's netns pool keeps ready (adapts to demand).");
  auto& netns_misses = metrics_->AddGauge("ember_netns_pool_misses",
                                          "Fork boots that found no network namespace ready.");
  metrics_->AddCollector([this, &templates, &children, &netns_ready, &netns_target, &netns_misses] {
    std::map<std::string, double> by_state;
    for (const auto& t : ListTemplates()) {
      by_state[t.state] += 1;
      if (t.id.empty()) continue;
      children.With({{"function", t.function}, {"template", t.id}})
          .Set(static_cast<double>(t.children));
      netns_ready.With({{"function", t.function}, {"template", t.id}})
          .Set(static_cast<double>(t.netns.ready));
      netns_target.With({{"function", t.function}, {"template", t.id}})
          .Set(static_cast<double>(t.netns.target));
      netns_misses.With({{"function", t.function}, {"template", t.id}})
          .Set(static_cast<double>(t.netns.misses));
    }
    for (const char* state : {"building", "ready", "refused", "failed", "retiring"}) {
      templates.With({{"state", state}}).Set(by_state[state]);
    }
  });
  auto& shells_ready = metrics_->AddGauge("ember_restore_shells_ready",
                                          "Restore shells parked, per function with a snapshot.");
  auto& shells_target = metrics_->AddGauge("ember_restore_shells_target",
                                           "What a function's restore shell pool keeps (adapts).");
  auto& shells_misses = metrics_->AddGauge("ember_restore_shells_misses",
                                           "Restores that found no restore shell parked.");
  metrics_->AddCollector([this, &shells_ready, &shells_target, &shells_misses] {
    for (const auto& [name, scheduler] : schedulers_) {
      auto stats = restore_shells_.Stats(name);
      if (!stats) continue;
      shells_ready.With({{"function", name}}).Set(static_cast<double>(stats->ready));
      shells_target.With({{"function", name}}).Set(static_cast<double>(stats->target));
      shells_misses.With({{"function", name}}).Set(static_cast<double>(stats->misses));
    }
  });
  auto& gate = metrics_->AddGauge(
      "ember_boots", "Boots in progress and waiting for a slot (--boot-concurrency), by state.");
  auto& overstayed = metrics_->AddGauge(
      "ember_boots_overstayed", "Boots that held their slot past the limit and were let go.");
  metrics_->AddCollector([this, &gate, &overstayed] {
    gate.With({{"state", "in_progress"}}).Set(static_cast<double>(boot_gate_->in_progress()));
    gate.With({{"state", "waiting"}}).Set(static_cast<double>(boot_gate_->waiting()));
    overstayed.With().Set(static_cast<double>(boot_gate_->overstayed()));
  });
  metrics_->AddCollector([this, &instances, &queued, &functions, &cgroups] {
    functions.With().Set(static_cast<double>(schedulers_.size()));
    for (const auto& [name, scheduler] : schedulers_) {
      auto c = scheduler->counts();
      instances.With({{"function", name}, {"state", "booting"}})
          .Set(static_cast<double>(c.booting));
      instances.With({{"function", name}, {"state", "idle"}}).Set(static_cast<double>(c.idle));
      instances.With({{"function", name}, {"state", "busy"}}).Set(static_cast<double>(c.busy));
      queued.With({{"function", name}}).Set(static_cast<double>(c.queued));
    }
    if (auto free = launcher_->CountFreeCgroups()) cgroups.With().Set(static_cast<double>(*free));
  });
}

void Engine::CountInvocation(const std::string& function, const InvokeReply& reply) {
  if (metrics_ == nullptr) return;
  metrics_->AddCounter("ember_invocations_total", "")
      .With({{"function", function}, {"outcome", InvokeOutcomeName(reply.outcome)}})
      .Inc();
  if (reply.outcome == InvokeOutcome::kOk) {
    metrics_->AddHistogram("ember_invocation_duration_seconds", "")
        .With({{"function", function}})
        .Observe(Seconds(reply.timings.total));
  }
}

}  // namespace ember::engine
