// The instances of one function and the invocations waiting for them (io thread only).
//
// An invocation goes to an instance that has a free slot (fewer than `concurrency` invocations
// in flight), the most recently used first, so that idle instances at the back age out. If
// none is free and fewer than max_instances exist or are booting, one is booted (on the boot
// threads); the invocation waits in the function's bounded queue meanwhile. A full queue is
// refused at once (429). Idle instances live `keep_alive`, then are stopped.
//
// A forced boot mode (`ember invoke --boot plain`) always boots a fresh instance for that
// invocation, stopping an idle one first if the function is at max_instances.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/instance.h"
#include "engine/invocation.h"
#include "engine/launcher.h"

namespace ember::engine {

// What a scheduler runs: one deployed version of a function.
struct FunctionVersion {
  Manifest manifest;
  std::string version;
  std::string code_dir;
};

// What the scheduler needs from the engine around it.
struct SchedulerHost {
  boost::asio::io_context* io = nullptr;
  // Boots on a boot thread and calls `done` back on the io thread.
  std::function<void(const BootRequest&,
                     std::function<void(tl::expected<BootedInstance, BootError>)>)>
      boot;
  // Everything an instance prints.
  std::function<void(Instance&, std::string_view)> log;
  // An instance died or was stopped: tear its sandbox down off the io thread.
  std::function<void(const std::shared_ptr<Instance>&)> dispose;
  // Observations for metrics.
  std::function<void(const std::string& function, BootMode, bool ok, std::chrono::microseconds)>
      booted;
  // What a function's version can boot from right now (its template, its snapshot).
  std::function<BootSources(const FunctionVersion&)> sources;
  size_t queue_limit = 100;
  std::chrono::milliseconds queue_timeout{60000};
};

class FunctionScheduler {
 public:
  FunctionScheduler(SchedulerHost* host, FunctionVersion function);
  ~FunctionScheduler();

  const FunctionVersion& function() const { return function_; }
  void Invoke(InvokeCall call);
  // A new version: new invocations go to new instances; idle old ones stop now, busy ones when
  // their invocations finish.
  void Update(FunctionVersion function);
  // Takes an instance booted outside the scheduler (the one deploy boots to check the code).
  void Adopt(BootedInstance booted, BootMode mode, const std::string& instance_id);
  // Stops every instance and answers every queued invocation with `outcome`.
  void StopAll(const std::string& reason, InvokeOutcome outcome);
  // Periodic: stops instances idle past keep_alive, fails invocations queued too long.
  void Tick();

  struct Counts {
    size_t booting = 0, idle = 0, busy = 0, queued = 0;
  };
  Counts counts() const;
  const std::vector<std::shared_ptr<Instance>>& instances() const { return instances_; }
  std::shared_ptr<Instance> Find(const std::string& instance_id) const;
  // Versions some live instance still runs (the store keeps their code).
  std::vector<std::string> VersionsInUse() const;
  bool idle_and_empty() const { return instances_.empty() && booting_ == 0 && queue_.empty(); }

 private:
  struct Queued {
    InvokeCall call;
    std::string request_id;
    std::chrono::steady_clock::time_point arrived;
    bool fresh = false;  // waits for an instance booted for it alone (forced boot mode)
  };

  void Dispatch();
  void Run(const std::shared_ptr<Instance>& instance, Queued queued, bool booted_for_it);
  void StartBoot(std::optional<Queued> dedicated, BootMode mode);
  void OnBooted(tl::expected<BootedInstance, BootError> result, const std::string& instance_id,
                BootMode mode, std::optional<Queued> dedicated, const std::string& version);
  BootSources Sources() const;
  // The fastest mode available now (plain when nothing else is).
  BootMode DefaultMode() const;
  // Instances that can still serve, plus those booting.
  size_t Live() const;
  std::shared_ptr<Instance> AddInstance(BootedInstance booted, BootMode mode,
                                        const std::string& instance_id);
  void OnDead(Instance& instance);
  std::shared_ptr<Instance> PickFree() const;

  SchedulerHost* host_;
  FunctionVersion function_;
  std::vector<std::shared_ptr<Instance>> instances_;
  size_t booting_ = 0;
  std::deque<Queued> queue_;
  // Instances booted for the queue that have not served yet: the first invocation each serves
  // reports its boot's timings.
  std::set<std::string> fresh_boot_timings_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

std::string NewRequestId();

}  // namespace ember::engine
