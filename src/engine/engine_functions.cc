// Engine: deploying, listing and removing functions.
#include <boost/asio/post.hpp>

#include "base/log.h"
#include "engine/engine.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

DeployReply DeployFailed(DeployOutcome outcome, std::string message) {
  DeployReply reply;
  reply.outcome = outcome;
  reply.message = std::move(message);
  return reply;
}

}  // namespace

void Engine::Deploy(const std::string& name, std::string bundle_tar,
                    std::function<void(DeployReply)> done) {
  if (shutting_down_) return done(DeployFailed(DeployOutcome::kFailed, "the daemon is stopping"));
  if (!deploying_.insert(name).second) {
    return done(
        DeployFailed(DeployOutcome::kBusy, "a deploy of " + name + " is already in progress"));
  }
  auto start = Clock::now();
  // Unpacking and the checking boot block: both run on a boot thread.
  asio::post(boot_pool_, [this, name, start, bundle = std::move(bundle_tar),
                          done = std::move(done)]() mutable {
    struct Outcome {
      std::optional<StagedFunction> staged;
      std::optional<BootedInstance> booted;
      std::string instance_id;
      DeployReply failure;
    };
    auto outcome = std::make_shared<Outcome>();
    auto staged = store_->Stage(bundle);
    if (!staged) {
      outcome->failure = DeployFailed(DeployOutcome::kInvalid, staged.error().ToString());
    } else if (staged->manifest().name != name) {
      outcome->failure =
          DeployFailed(DeployOutcome::kInvalid, "the bundle's ember.toml names function '" +
                                                    staged->manifest().name +
                                                    "', but it was deployed as '" + name + "'");
    } else {
      outcome->instance_id = NewInstanceId();
      auto booted = launcher_->Boot({outcome->instance_id, staged->manifest(), staged->code_dir()});
      if (booted) {
        outcome->booted.emplace(std::move(*booted));
        outcome->staged.emplace(std::move(*staged));
      } else {
        BootError& failure = booted.error();
        bool init = failure.init.has_value();
        outcome->failure = DeployFailed(init ? DeployOutcome::kInitFailed : DeployOutcome::kFailed,
                                        failure.error.ToString());
        if (init) outcome->failure.init_error = *failure.init;
        outcome->failure.early_log = std::move(failure.early_log);
        // A runtime that died before it was ready is the function's fault too (a crash at
        // import, an OOM), not the daemon's.
        if (failure.error.code() == ErrorCode::kUnavailable ||
            failure.error.code() == ErrorCode::kTimeout) {
          outcome->failure.outcome = DeployOutcome::kInitFailed;
        }
      }
    }
    asio::post(io_, [this, name, start, outcome, done = std::move(done)]() mutable {
      deploying_.erase(name);
      if (!outcome->staged) {
        outcome->failure.function = name;
        return done(std::move(outcome->failure));
      }
      CommitDeploy(name, std::move(*outcome->staged), std::move(*outcome->booted),
                   outcome->instance_id, start, done);
    });
  });
}

void Engine::CommitDeploy(const std::string& name, StagedFunction staged, BootedInstance booted,
                          const std::string& instance_id, Clock::time_point start,
                          const std::function<void(DeployReply)>& done) {
  if (shutting_down_) return done(DeployFailed(DeployOutcome::kFailed, "the daemon is stopping"));
  auto stored = store_->Commit(std::move(staged));
  if (!stored) return done(DeployFailed(DeployOutcome::kFailed, stored.error().ToString()));
  FunctionVersion version{stored->manifest, stored->version, stored->code_dir};
  DeployReply reply;
  reply.function = name;
  auto it = schedulers_.find(name);
  if (it == schedulers_.end()) {
    reply.outcome = DeployOutcome::kCreated;
    it = schedulers_.emplace(name, std::make_unique<FunctionScheduler>(&host_, version)).first;
  } else {
    reply.outcome = DeployOutcome::kUpdated;
    it->second->Update(version);
  }
  if (host_.booted) {
    host_.booted(name, BootMode::kPlain, true, booted.timings.sandbox + booted.timings.init);
  }
  it->second->Adopt(std::move(booted), BootMode::kPlain, instance_id);
  if (version.manifest.template_policy == TemplatePolicy::kOnDeploy) {
    BuildTemplate(version);
  } else {
    RetireTemplate(name);
  }
  if (version.manifest.snapshot_policy == SnapshotPolicy::kOnDeploy) {
    TakeSnapshot(name, [](const Result<SnapshotView>&) {});
  } else if (auto snapshot = GetSnapshot(name); snapshot && snapshot->version != version.version) {
    DropSnapshot(name);  // of the old code: a restore from it would run the old version
  }
  DropUnusedVersions(name);
  reply.took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  spdlog::info("deployed {} version {} in {} ms", name, stored->version, reply.took.count() / 1000);
  done(std::move(reply));
}

Result<FunctionView> Engine::GetFunction(const std::string& name) const {
  auto it = schedulers_.find(name);
  if (it == schedulers_.end()) {
    return Fail(ErrorCode::kNotFound, "no function named '" + name + "'");
  }
  EMBER_ASSIGN_OR_RETURN(auto stored, store_->Get(name));
  FunctionView view{std::move(stored), it->second->counts(), nullptr};
  if (auto t = GetTemplate(name)) view.fork_template = std::make_shared<TemplateView>(*t);
  if (auto s = GetSnapshot(name)) view.snapshot = std::make_shared<SnapshotView>(*s);
  return view;
}

std::vector<FunctionView> Engine::ListFunctions() const {
  std::vector<FunctionView> views;
  for (const auto& [name, scheduler] : schedulers_) {
    if (auto view = GetFunction(name)) views.push_back(std::move(*view));
  }
  return views;
}

Status Engine::RemoveFunction(const std::string& name) {
  auto it = schedulers_.find(name);
  if (it == schedulers_.end()) {
    return Fail(ErrorCode::kNotFound, "no function named '" + name + "'");
  }
  it->second->StopAll("function " + name + " was removed", InvokeOutcome::kStopped);
  schedulers_.erase(it);
  RetireTemplate(name);
  DropSnapshot(name);
  EMBER_TRY(store_->Remove(name));
  if (auto removed = RemoveFunctionLogs(logs_dir_, name); !removed) {
    spdlog::warn("{}", removed.error().ToString());
  }
  spdlog::info("removed function {}", name);
  return Ok();
}

}  // namespace ember::engine
