#include "engine_session.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "base/fs.h"
#include "daemon/metrics.h"
#include "engine/bundle.h"
#include "engine/manifest.h"
#include "image/mount.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/pool.h"

namespace ember::bench {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using engine::BootMode;

constexpr auto kTemplateWait = std::chrono::seconds(120);
constexpr auto kStopWait = std::chrono::seconds(30);
constexpr auto kShutdownGrace = std::chrono::milliseconds(5000);
constexpr size_t kReadChunk = 1 << 20;

// Everything runs on the one io thread, so waiting means running its handlers until `ready`
// holds; one handler at a time, so the wait ends as soon as it can.
bool RunUntil(asio::io_context& io, const std::function<bool()>& ready, Clock::duration limit) {
  auto deadline = Clock::now() + limit;
  while (!ready()) {
    if (Clock::now() >= deadline) return false;
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Millis(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; }

// A warm boot needs the image resident; reading it through is what a cold boot undid.
Status ReadIntoPageCache(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY | O_CLOEXEC));
  std::string buf(kReadChunk, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n == 0) return Ok();
    if (n < 0 && errno != EINTR) return FailErrno("read " + path);
  }
}

struct Sample {
  double ms = 0;
  std::string error;
  std::string instance;
  engine::InvokeTimings timings;
};

struct Pair {  // one function in one boot mode
  BootMode mode = BootMode::kPlain;
  std::string unavailable;  // why it cannot be measured at all
  std::string failed;       // the invocation that ended its samples
  std::vector<Sample> samples;
};

struct Function {
  std::string dir;
  std::string name;
  std::string bundle;
  double deploy_ms = 0;
  std::vector<Pair> pairs;
  std::set<std::string> seen;  // every instance that answered, to prove each boot was fresh
};

class Session {
 public:
  Session(const SessionPlan& plan, asio::io_context& io, engine::Engine& engine)
      : plan_(plan), io_(io), engine_(engine) {}

  Status Deploy(Function& f) {
    std::optional<engine::DeployReply> reply;
    auto start = Clock::now();
    engine_.Deploy(f.name, f.bundle, [&reply](engine::DeployReply r) { reply = std::move(r); });
    RunUntil(
        io_, [&] { return reply.has_value(); }, Clock::duration::max() / 2);
    f.deploy_ms = Millis(Clock::now() - start);
    if (reply->outcome != engine::DeployOutcome::kCreated &&
        reply->outcome != engine::DeployOutcome::kUpdated) {
      std::string why = reply->message;
      if (!reply->init_error.message.empty()) why += ": " + reply->init_error.message;
      return Fail(ErrorCode::kInternal, "deploy " + f.name + " from " + f.dir + ": " + why);
    }
    return Ok();
  }

  // What each mode boots from: the template deploy builds, a snapshot taken now.
  void Ready(Function& f) {
    std::string no_snapshot;
    bool snapshot_taken = false;
    for (Pair& p : f.pairs) {
      if (p.mode == BootMode::kFork) p.unavailable = WaitTemplate(f.name);
      if (p.mode != BootMode::kWarm && p.mode != BootMode::kCold) continue;
      if (!snapshot_taken) {
        no_snapshot = TakeSnapshot(f.name);
        snapshot_taken = true;
      }
      p.unavailable = no_snapshot;
    }
  }

  // One measured (or warm-up) invocation per available pair, interleaved by mode.
  void Round(Function& f, bool measured) {
    for (Pair& p : f.pairs) {
      if (!p.unavailable.empty() || !p.failed.empty()) continue;
      Sample s = One(f, p.mode);
      if (!s.error.empty()) p.failed = s.error;
      if (measured || !s.error.empty()) p.samples.push_back(std::move(s));
    }
  }

 private:
  std::string WaitTemplate(const std::string& name) {
    std::string state;
    std::string reason;
    RunUntil(
        io_,
        [&] {
          auto t = engine_.GetTemplate(name);
          state = t ? t->state : "";
          reason = t ? t->reason : "";
          return state == "ready" || state == "refused" || state == "failed";
        },
        kTemplateWait);
    if (state == "ready") return "";
    if (state.empty()) {
      return "no fork template for " + name +
             " (template = \"deploy\" in its ember.toml builds one on deploy)";
    }
    return "the fork template of " + name + " is " + state + (reason.empty() ? "" : ": " + reason);
  }

  std::string TakeSnapshot(const std::string& name) {
    std::optional<Result<engine::SnapshotView>> taken;
    engine_.TakeSnapshot(name, [&taken](Result<engine::SnapshotView> r) { taken = std::move(r); });
    RunUntil(
        io_, [&] { return taken.has_value(); }, Clock::duration::max() / 2);
    if (!*taken) return "snapshot of " + name + ": " + taken->error().ToString();
    return "";
  }

  Sample One(Function& f, BootMode mode) {
    Sample s;
    if (mode == BootMode::kWarm) {
      auto snapshot = engine_.GetSnapshot(f.name);
      auto read = snapshot ? ReadIntoPageCache(snapshot->path)
                           : Fail(ErrorCode::kNotFound, "no snapshot of " + f.name);
      if (!read) {
        s.error = "make the snapshot resident: " + read.error().ToString();
        return s;
      }
    }
    std::optional<engine::InvokeReply> reply;
    Clock::time_point answered;
    engine::InvokeCall call;
    call.function = f.name;
    call.event = plan_.event;
    call.boot = mode;
    call.done = [&reply, &answered](engine::InvokeReply r) {
      answered = Clock::now();
      reply = std::move(r);
    };
    auto start = Clock::now();
    engine_.Invoke(std::move(call));
    RunUntil(
        io_, [&] { return reply.has_value(); }, Clock::duration::max() / 2);
    s.ms = Millis(answered - start);
    s.instance = reply->instance_id;
    s.timings = reply->timings;
    s.error = Check(f, mode, *reply);
    f.seen.insert(s.instance);
    if (!s.instance.empty()) {
      if (auto stopped = Stop(s.instance); !stopped && s.error.empty()) {
        s.error = stopped.error().ToString();
      }
    }
    return s;
  }

  std::string Check(const Function& f, BootMode mode, const engine::InvokeReply& reply) const {
    if (reply.outcome != engine::InvokeOutcome::kOk) {
      std::string why = reply.message.empty() ? reply.error.message : reply.message;
      return std::string(engine::InvokeOutcomeName(reply.outcome)) + ": " + why;
    }
    if (reply.instance_id.empty() || reply.boot_mode != mode || f.seen.count(reply.instance_id)) {
      return std::string("expected a fresh ") + engine::BootModeName(mode) +
             "-booted instance, got '" + reply.instance_id + "' (boot mode " +
             engine::BootModeName(reply.boot_mode) + ")";
    }
    if (!plan_.expect.empty()) {
      auto got = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
      auto want = nlohmann::json::parse(plan_.expect, nullptr, /*allow_exceptions=*/false);
      if (got != want)
        return "unexpected answer " + reply.body + " (expected " + plan_.expect + ")";
    }
    return "";
  }

  // Outside the clock, and waited for: the next boot is not measured beside this teardown.
  Status Stop(const std::string& id) {
    EMBER_TRY_CTX(engine_.StopInstance(id), "stop instance " + id);
    auto listed = [&] {
      for (const auto& i : engine_.ListInstances()) {
        if (i.id == id) return true;
      }
      return false;
    };
    if (!RunUntil(
            io_, [&] { return !listed(); }, kStopWait)) {
      return Fail(ErrorCode::kTimeout, "instance " + id + " still listed 30 s after its stop");
    }
    return Ok();
  }

  const SessionPlan& plan_;
  asio::io_context& io_;
  engine::Engine& engine_;
};

nlohmann::json ToJson(const SessionPlan& plan, const std::vector<Function>& functions) {
  nlohmann::json out = {{"tool", "ember-engine-bench"},     {"rounds", plan.rounds},
                        {"warmups", plan.warmups},          {"event", plan.event},
                        {"modes", nlohmann::json::array()}, {"functions", nlohmann::json::array()}};
  for (BootMode mode : plan.modes) out["modes"].push_back(engine::BootModeName(mode));
  for (const Function& f : functions) {
    nlohmann::json modes = nlohmann::json::object();
    for (const Pair& p : f.pairs) {
      nlohmann::json samples = nlohmann::json::array();
      for (const Sample& s : p.samples) {
        const auto& t = s.timings;
        samples.push_back({{"ms", s.ms},
                           {"instance", s.instance},
                           {"error", s.error.empty() ? nlohmann::json() : nlohmann::json(s.error)},
                           {"engine_ms",
                            {{"sandbox", Millis(t.sandbox)},
                             {"init", Millis(t.init)},
                             {"queue", Millis(t.queued)},
                             {"handler", Millis(t.handler)},
                             {"total", Millis(t.total)}}}});
      }
      std::string error = !p.unavailable.empty() ? p.unavailable : p.failed;
      modes[engine::BootModeName(p.mode)] = {
          {"error", error.empty() ? nlohmann::json() : nlohmann::json(error)},
          {"samples", samples}};
    }
    out["functions"].push_back(
        {{"name", f.name}, {"dir", f.dir}, {"deploy_ms", f.deploy_ms}, {"modes", modes}});
  }
  return out;
}

// What `ember cleanup` removes of the engine's: its cgroup pool (and v1's fork pool) and idle
// image mounts, so that a benchmark run leaves the host as it found it.
Status RemoveCgroupPools(const engine::LauncherOptions& launcher) {
  EMBER_TRY_CTX(image::CleanupStaleMounts(launcher.run_dir), "unmount idle images");
  EMBER_ASSIGN_OR_RETURN(auto hierarchy, cgroup::DetectHierarchy());
  cgroup::PoolOptions options;
  options.name = launcher.cgroup_name;
  options.lock_dir = launcher.run_dir + "/cgroups";
  EMBER_ASSIGN_OR_RETURN(auto pool, cgroup::Pool::Open(hierarchy, options));
  EMBER_TRY_CTX(pool.Destroy(), "remove the cgroup pool " + options.name);
  if (hierarchy.version == cgroup::Version::kV1) {
    options.name = cgroup::ForkPoolName(options.name);
    options.lock_dir = launcher.run_dir + "/cgroups-fork";
    options.memory = false;
    EMBER_ASSIGN_OR_RETURN(auto fork_pool, cgroup::Pool::Open(hierarchy, options));
    EMBER_TRY_CTX(fork_pool.Destroy(), "remove the cgroup pool " + options.name);
  }
  return Ok();
}

Status Measure(const SessionPlan& plan, asio::io_context& io, engine::Engine& engine,
               std::vector<Function>& functions) {
  Session session(plan, io, engine);
  for (Function& f : functions) {
    EMBER_TRY(session.Deploy(f));
    session.Ready(f);
    for (const Pair& p : f.pairs) {
      if (!p.unavailable.empty()) {
        std::fprintf(stderr, "ember-engine-bench: %s %s: %s\n", f.name.c_str(),
                     engine::BootModeName(p.mode), p.unavailable.c_str());
      }
    }
  }
  for (size_t round = 0; round < plan.warmups + plan.rounds; ++round) {
    for (Function& f : functions) session.Round(f, round >= plan.warmups);
  }
  return Ok();
}

}  // namespace

Status RunSession(const SessionPlan& plan) {
  // Plan: every bundle read and packed before anything is started.
  std::vector<Function> functions;
  for (const std::string& dir : plan.function_dirs) {
    Function f;
    f.dir = dir;
    EMBER_ASSIGN_OR_RETURN(auto manifest, engine::LoadBundleManifest(dir));
    f.name = manifest.name;
    EMBER_ASSIGN_OR_RETURN(f.bundle, engine::PackBundle(dir));
    for (BootMode mode : plan.modes) f.pairs.push_back(Pair{.mode = mode});
    functions.push_back(std::move(f));
  }
  EMBER_TRY(MakeDirs(plan.engine.launcher.data_dir));
  asio::io_context io(1);
  auto work = asio::make_work_guard(io);
  daemon::MetricsRegistry metrics;
  auto created = engine::Engine::Create(io, plan.engine, &metrics);
  if (!created) {
    // It may have made its cgroup pool before failing.
    (void)RemoveCgroupPools(plan.engine.launcher);
    return Fail(std::move(created).error().Context("start the engine"));
  }
  std::unique_ptr<engine::Engine> engine = std::move(*created);
  Status measured = Measure(plan, io, *engine, functions);
  // Apply's undo, whatever Measure did: instances and templates stopped, then the pools.
  bool down = false;
  engine->Shutdown(kShutdownGrace, [&down] { down = true; });
  RunUntil(
      io, [&] { return down; }, Clock::duration::max() / 2);
  engine.reset();
  Status removed = RemoveCgroupPools(plan.engine.launcher);
  EMBER_TRY(measured);
  EMBER_TRY(removed);
  std::string json =
      ToJson(plan, functions).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  EMBER_TRY_CTX(WriteFileAtomic(plan.json_out, json + "\n"), "write " + plan.json_out);
  return Ok();
}

}  // namespace ember::bench
