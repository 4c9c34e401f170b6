// Engine: fork-boot templates (DESIGN.md, "fork boot"). Each function has at most one current
// template, built for its current version (at deploy, at daemon start, or on first invoke, per
// the manifest's `template`). Fork boot asks it for children; a redeploy retires it, and a
// retired template is stopped once its last child is gone (its children die with it).
#include <signal.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "engine/engine.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Fork resources (cgroup with the function's limits, its cgroup.procs fds, control sockets) kept
// claimed per template, so that a fork boot goes from the io thread to the template at once.
constexpr size_t kPreparedForkResources = 2;
constexpr std::chrono::milliseconds kPrepareForkDelay(5);

long Micros(Clock::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

std::string NewTemplateId() { return "t-" + NewInstanceId().substr(2); }

// A template's kReady payload: "" when it can fork, else why not.
std::string Refusal(const std::string& ready) {
  auto value = nlohmann::json::parse(ready, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return "the template's ready message is not JSON";
  auto fork = value.find("fork");
  if (fork != value.end() && fork->is_boolean() && fork->get<bool>()) return "";
  auto refused = value.find("refused");
  return refused != value.end() && refused->is_string() ? refused->get<std::string>()
                                                        : "the template cannot fork";
}

}  // namespace

BootSources Engine::SourcesFor(const FunctionVersion& function) {
  BootSources sources;
  SnapshotSources(function, &sources);
  auto it = templates_.find(function.manifest.name);
  if (function.manifest.template_policy == TemplatePolicy::kNone) {
    sources.template_reason = "the function's manifest says template = \"none\"";
  } else if (it == templates_.end()) {
    sources.template_reason = "no template has been built yet";
  } else if (it->second.version != function.version) {
    sources.template_reason = "the template of the new version is still being built";
  } else if (it->second.state == "ready" && it->second.live && it->second.live->alive()) {
    sources.template_alive = true;
  } else {
    sources.template_reason = it->second.state == "building"
                                  ? "the template is still being built"
                                  : "template " + it->second.state + ": " + it->second.reason;
  }
  return sources;
}

void Engine::BuildTemplate(const FunctionVersion& function) {
  const std::string& name = function.manifest.name;
  if (function.manifest.template_policy == TemplatePolicy::kNone || shutting_down_) return;
  if (auto it = templates_.find(name); it != templates_.end()) {
    bool same = it->second.version == function.version;
    if (same && (it->second.state == "building" || (it->second.live && it->second.live->alive()))) {
      return;
    }
    RetireTemplate(name);  // an older version's, or a failed one
  }
  templates_[name] = TemplateSlot{"building", "", function.version, nullptr};
  std::string id = NewTemplateId();
  BootRequest request{id, function.manifest, function.code_dir, BootMode::kPlain, true};
  asio::post(boot_pool_, [this, request, function, id] {
    auto booted =
        std::make_shared<tl::expected<BootedInstance, BootError>>(launcher_->Boot(request));
    // The helper that makes its network namespaces joins the template's user namespace.
    auto netns = std::make_shared<Result<std::shared_ptr<sandbox::NetnsPool>>>(
        Fail(ErrorCode::kUnavailable, "no template"));
    if (*booted && Refusal(booted->value().ready).empty()) {
      // Frozen, the template runs no function code; but each clone charges the child's page
      // tables and its brief pid to the template's cgroup, and on v1 its children share its
      // memory cgroup (Launcher::PrepareFork). So the memory limit covers every instance the
      // function may have, and the pids limit goes (each child has its own).
      sandbox::CgroupLimits frozen;
      frozen.cpus = request.manifest.cpus;
      frozen.memory_bytes = request.manifest.memory_bytes * (request.manifest.max_instances + 1);
      if (auto relaxed = booted->value().sandbox.cgroup().Apply(frozen); !relaxed) {
        spdlog::warn("template of {}: {}", request.manifest.name, relaxed.error().ToString());
      }
      sandbox::NetnsPoolOptions options;
      options.owner_pid = booted->value().sandbox.pid();
      options.mode = request.manifest.network;
      auto pool = sandbox::NetnsPool::Create(options);
      if (pool) {
        *netns = std::shared_ptr<sandbox::NetnsPool>(std::move(*pool));
      } else {
        *netns = Fail(pool.error());
      }
    }
    asio::post(io_, [this, function, id, booted, netns] {
      OnTemplateBuilt(function, id, std::move(*booted), std::move(*netns));
    });
  });
}

void Engine::OnTemplateBuilt(const FunctionVersion& function, const std::string& template_id,
                             tl::expected<BootedInstance, BootError> booted,
                             Result<std::shared_ptr<sandbox::NetnsPool>> netns) {
  const std::string& name = function.manifest.name;
  auto it = templates_.find(name);
  auto discard = [this](BootedInstance instance) {
    auto sandbox = std::make_shared<sandbox::Sandbox>(std::move(instance.sandbox));
    asio::post(boot_pool_, [sandbox] { (void)sandbox->Destroy(); });
  };
  if (it == templates_.end() || it->second.version != function.version || shutting_down_) {
    if (booted) discard(std::move(*booted));
    return;
  }
  TemplateSlot& slot = it->second;
  if (!booted) {
    slot.state = "failed";
    slot.reason = booted.error().error.ToString();
    spdlog::warn("template of {}: {}", name, slot.reason);
    return;
  }
  if (std::string refusal = Refusal(booted->ready); !refusal.empty()) {
    slot.state = "refused";
    slot.reason = refusal;
    spdlog::info("{} cannot be fork-booted: {}", name, refusal);
    discard(std::move(*booted));
    return;
  }
  if (!netns) {
    slot.state = "failed";
    slot.reason = netns.error().ToString();
    spdlog::warn("template of {}: {}", name, slot.reason);
    discard(std::move(*booted));
    return;
  }
  Template::Hooks hooks;
  hooks.on_child_exit = [this, name](const std::string& instance_id, ExitStatus status) {
    auto scheduler = schedulers_.find(name);
    if (scheduler != schedulers_.end()) {
      if (auto instance = scheduler->second->Find(instance_id)) instance->NotifyExit(status);
    }
    StopIdleRetiredTemplates();
  };
  hooks.on_dead = [this, name](Template& dead) { OnTemplateDead(name, dead); };
  hooks.on_child_log = [this, name](const std::string& instance_id, std::string_view text) {
    auto scheduler = schedulers_.find(name);
    if (scheduler == schedulers_.end()) return;
    if (auto instance = scheduler->second->Find(instance_id)) instance->AppendLog(text);
  };
  hooks.on_log = [](Template& t, std::string_view text) {
    spdlog::info("template {}: {}", t.id(), text);
  };
  slot.live = std::make_shared<Template>(io_, template_id, function.version, std::move(*booted),
                                         std::move(*netns), std::move(hooks));
  slot.live->Start();
  PrepareForkResources(slot.live, function.manifest);
  slot.state = "ready";
  slot.reason.clear();
  spdlog::info("template {} of {} is ready", template_id, name);
}

void Engine::ForkBoot(const BootRequest& request, BootDone done) {
  auto start = Clock::now();
  auto it = templates_.find(request.manifest.name);
  std::shared_ptr<Template> t = it == templates_.end() ? nullptr : it->second.live;
  if (!t || !t->alive()) {
    done(tl::unexpected(
        BootError{Error(ErrorCode::kUnavailable,
                        "function " + request.manifest.name + " has no live template"),
                  std::nullopt, ""}));
    return;
  }
  // The fast path: cgroup, sockets and netns all ready, the request goes to the template now.
  if (auto prepared = t->TakePrepared()) {
    if (auto netns = t->netns()->TryTake()) {
      spdlog::debug("fork boot {}: prepared resources", request.instance_id);
      t->Spawn(request.instance_id, std::move(*prepared), std::move(*netns), start,
               std::move(done));
      PrepareForkResources(t, request.manifest);
      return;
    }
    t->AddPrepared(std::move(*prepared));
  }
  std::string memory_cgroup = t->memory_cgroup();
  asio::post(boot_pool_, [this, t, request, start, memory_cgroup,
                          done = std::move(done)]() mutable {
    auto picked = Clock::now();
    auto resources = std::make_shared<Result<ForkResources>>(
        launcher_->PrepareFork(request.manifest, memory_cgroup));
    auto prepared = Clock::now();
    auto netns = std::make_shared<Result<UniqueFd>>(
        *resources ? t->netns()->Take() : Result<UniqueFd>(Fail(resources->error())));
    spdlog::debug("fork boot {}: queued {} us, cgroup and sockets {} us, netns {} us",
                  request.instance_id, Micros(picked - start), Micros(prepared - picked),
                  Micros(Clock::now() - prepared));
    asio::post(io_, [this, t, request, start, resources, netns, done = std::move(done)]() mutable {
      if (!*resources || !*netns) {
        Error error = !*resources ? resources->error() : netns->error();
        done(tl::unexpected(BootError{
            std::move(error).Context("fork boot of " + request.instance_id), std::nullopt, ""}));
        return;
      }
      t->Spawn(request.instance_id, std::move(**resources), std::move(**netns), start,
               std::move(done));
      PrepareForkResources(t, request.manifest);
    });
  });
}

void Engine::PrepareForkResources(const std::shared_ptr<Template>& t, const Manifest& manifest) {
  if (!t->alive() || t->preparing() || t->prepared() >= kPreparedForkResources) return;
  t->set_preparing(true);
  // After a pause: the boot that used the last set is still setting up its child, and on a
  // 2-CPU host a claim beside it would only slow it down.
  auto timer = std::make_shared<asio::steady_timer>(io_, kPrepareForkDelay);
  timer->async_wait([this, t, manifest, timer](const boost::system::error_code&) {
    std::string memory_cgroup = t->memory_cgroup();
    asio::post(boot_pool_, [this, t, manifest, memory_cgroup] {
      auto resources =
          std::make_shared<Result<ForkResources>>(launcher_->PrepareFork(manifest, memory_cgroup));
      asio::post(io_, [this, t, manifest, resources] {
        t->set_preparing(false);
        if (!*resources) {
          // The spawn path claims its own and says why if it fails too.
          spdlog::debug("prepare fork resources for template {}: {}", t->id(),
                        resources->error().ToString());
          return;
        }
        if (!t->alive()) return;  // released with `resources`
        t->AddPrepared(std::move(**resources));
        PrepareForkResources(t, manifest);
      });
    });
  });
}

void Engine::RetireTemplate(const std::string& function) {
  auto it = templates_.find(function);
  if (it == templates_.end()) return;
  if (it->second.live && it->second.live->alive()) retired_.emplace_back(function, it->second.live);
  templates_.erase(it);
  StopIdleRetiredTemplates();
}

void Engine::StopIdleRetiredTemplates() {
  for (auto& [function, t] : retired_) {
    if (t->alive() && t->children() == 0) t->Stop();
  }
}

void Engine::OnTemplateDead(const std::string& function, Template& dead) {
  // Its children died with it: tell their instances (the template cannot report them now).
  auto scheduler = schedulers_.find(function);
  if (scheduler != schedulers_.end()) {
    // A copy: NotifyExit ends in the scheduler removing the instance from its list.
    auto instances = scheduler->second->instances();
    for (const auto& instance : instances) {
      if (instance->boot_mode() == BootMode::kFork && instance->version() == dead.version() &&
          instance->alive()) {
        instance->NotifyExit(ExitStatus{true, SIGKILL, false});
      }
    }
  }
  auto slot = templates_.find(function);
  // `dead` must outlive this call even when the slot held its last reference.
  std::shared_ptr<Template> keep = dead.shared_from_this();
  bool rebuild = false;
  if (slot != templates_.end() && slot->second.live.get() == &dead) {
    slot->second.state = "failed";
    slot->second.reason = "the template died";
    slot->second.live = nullptr;
    // One that served a while gets rebuilt; one that dies right away stays failed (it would
    // only die again), until the next deploy.
    rebuild = !shutting_down_ &&
              std::chrono::system_clock::now() - dead.started() > std::chrono::seconds(30);
  }
  auto sandbox = std::make_shared<sandbox::Sandbox>(dead.TakeSandbox());
  std::erase_if(retired_, [&](const auto& entry) { return entry.second.get() == &dead; });
  ++disposing_;
  if (auto scheduler = schedulers_.find(function); rebuild && scheduler != schedulers_.end()) {
    spdlog::warn("template {} of {} died; building a new one", dead.id(), function);
    BuildTemplate(scheduler->second->function());
  }
  asio::post(boot_pool_, [this, sandbox, function] {
    (void)sandbox->Destroy();
    asio::post(io_, [this, function] {
      --disposing_;
      DropUnusedVersions(function);
    });
  });
}

void Engine::StopAllTemplates() {
  for (auto& [function, slot] : templates_) {
    if (slot.live) slot.live->Stop();
  }
  for (auto& [function, t] : retired_) t->Stop();
}

TemplateView Engine::ViewOf(const std::string& function, const TemplateSlot* slot,
                            const Template* t) const {
  TemplateView view;
  view.function = function;
  if (slot != nullptr) {
    view.version = slot->version;
    view.state = slot->state;
    view.reason = slot->reason;
  } else {
    view.state = "retiring";
  }
  if (t != nullptr) {
    view.version = t->version();
    view.id = t->id();
    view.pid = t->pid();
    view.children = t->children();
    view.spawned = t->spawned();
    view.started = t->started();
    if (t->netns()) view.netns = t->netns()->Stats();
  }
  return view;
}

std::vector<TemplateView> Engine::ListTemplates() const {
  std::vector<TemplateView> views;
  for (const auto& [function, slot] : templates_) {
    views.push_back(ViewOf(function, &slot, slot.live.get()));
  }
  for (const auto& [function, t] : retired_) views.push_back(ViewOf(function, nullptr, t.get()));
  return views;
}

std::optional<TemplateView> Engine::GetTemplate(const std::string& function) const {
  auto it = templates_.find(function);
  if (it == templates_.end()) return std::nullopt;
  return ViewOf(function, &it->second, it->second.live.get());
}

}  // namespace ember::engine
