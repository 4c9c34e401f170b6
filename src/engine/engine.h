// The engine: the one owner of the daemon's state (functions, their schedulers and instances).
// Every method runs on the io thread; blocking work (unpacking a bundle, booting a sandbox,
// tearing one down) runs on a small pool of boot threads and comes back to the io thread as a
// posted completion. The boot threads live as long as the engine, because a sandbox's
// parent-death signal follows the thread that cloned it.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/metrics.h"
#include "engine/function_store.h"
#include "engine/invocation.h"
#include "engine/launcher.h"
#include "engine/log_sink.h"
#include "engine/scheduler.h"
#include "engine/shell_pool.h"
#include "engine/template.h"

namespace ember::engine {

struct EngineOptions {
  LauncherOptions launcher;
  size_t boot_threads = 2;
  // Boots in progress at once (engine/boot_gate.h); 0: no limit.
  size_t boot_concurrency = 0;
  size_t queue_limit = 100;  // per function
  std::chrono::milliseconds queue_timeout{60000};
  uint64_t log_max_bytes = 1 << 20;  // per instance log file, before rotation
  ShellPoolOptions restore_shells;   // per function with a snapshot
};

enum class DeployOutcome { kCreated, kUpdated, kInvalid, kInitFailed, kBusy, kFailed };

struct DeployReply {
  DeployOutcome outcome = DeployOutcome::kFailed;
  std::string message;
  agent::ErrorInfo init_error;  // kInitFailed: the runtime's type, message and traceback
  std::string early_log;        // what the instance printed before failing
  std::string function;         // the deployed function's name
  std::chrono::microseconds took{0};
};

struct TemplateView;

// A function's snapshot for cold and warm boot (engine_snapshots.cc).
struct SnapshotView {
  std::string function;
  std::string version;
  std::string state;  // taking | ready | failed
  std::string reason;
  std::string path;
  uint64_t size_bytes = 0;
  bool resident = false;  // in the page cache: the next restore is a warm boot
  size_t working_set_pages = 0;
  ShellPoolStats shells;  // restore shells parked for it (engine_shells.cc)
  std::chrono::system_clock::time_point taken;
};

struct FunctionView {
  StoredFunction stored;
  FunctionScheduler::Counts counts;
  std::shared_ptr<TemplateView> fork_template;  // null: none built (or being built) for it
  std::shared_ptr<SnapshotView> snapshot;       // null: none taken
};

struct InstanceView {
  std::string id;
  std::string function;
  std::string version;
  std::string state;  // idle | busy | stopping
  BootMode boot_mode = BootMode::kPlain;
  pid_t pid = 0;
  std::chrono::system_clock::time_point started;
  std::chrono::system_clock::time_point last_used;
  uint64_t invocations = 0;
  size_t in_flight = 0;
};

struct TemplateView {
  std::string function;
  std::string version;
  std::string state;  // building | ready | refused | failed | retiring
  std::string reason;
  std::string id;
  pid_t pid = 0;
  size_t children = 0;
  uint64_t spawned = 0;
  std::chrono::system_clock::time_point started;
  sandbox::NetnsPoolStats netns;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Create(boost::asio::io_context& io, EngineOptions options,
                                                daemon::MetricsRegistry* metrics);
  ~Engine();

  // Stages the bundle, boots one instance from it to check that the code initializes, and only
  // then makes it the function's current version; the checking instance stays as a warm one.
  void Deploy(const std::string& name, std::string bundle_tar,
              std::function<void(DeployReply)> done);
  Result<FunctionView> GetFunction(const std::string& name) const;
  std::vector<FunctionView> ListFunctions() const;
  Status RemoveFunction(const std::string& name);

  void Invoke(InvokeCall call);

  // Takes the snapshot of the function's current version (replacing an older one); `done` gets
  // it once written and opened, or why not. Joins a snapshot already being taken.
  void TakeSnapshot(const std::string& name, std::function<void(Result<SnapshotView>)> done);
  std::optional<SnapshotView> GetSnapshot(const std::string& function) const;

  std::vector<InstanceView> ListInstances() const;
  // Fork-boot templates: the current one of each function, then retired ones still serving.
  std::vector<TemplateView> ListTemplates() const;
  std::optional<TemplateView> GetTemplate(const std::string& function) const;
  Status StopInstance(const std::string& id);
  Result<LogRead> ReadLogs(const std::string& function, const LogReadOptions& options) const;

  // Refuses new work, lets invocations in flight finish for up to `grace`, stops everything,
  // then calls `done` (on the io thread).
  void Shutdown(std::chrono::milliseconds grace, std::function<void()> done);
  bool shutting_down() const { return shutting_down_; }
  size_t instance_count() const;
  size_t function_count() const { return schedulers_.size(); }

 private:
  Engine(boost::asio::io_context& io, EngineOptions options, daemon::MetricsRegistry* metrics);
  using BootDone = std::function<void(tl::expected<BootedInstance, BootError>)>;
  // Waits for a slot of the boot gate, then StartBoot: the boot in the request's mode.
  void Boot(const BootRequest& request, BootDone done);
  void StartBoot(const BootRequest& request, BootDone done);
  void Dispose(const std::shared_ptr<Instance>& instance);
  // Fork boot (engine_templates.cc).
  struct TemplateSlot {
    std::string state;  // building | ready | refused | failed
    std::string reason;
    std::string version;
    std::shared_ptr<Template> live;
  };
  BootSources SourcesFor(const FunctionVersion& function);
  // Cold and warm boot (engine_snapshots.cc).
  struct SnapshotSlot {
    std::string state;  // taking | ready | failed
    std::string reason;
    std::string version;
    std::string path;
    std::shared_ptr<SnapshotSource> source;
    std::chrono::system_clock::time_point taken;
    std::vector<std::function<void(Result<SnapshotView>)>> waiters;
    bool recording_working_set = false;  // under way, or given up
    int working_set_failures = 0;
  };
  std::string SnapshotPath(const FunctionVersion& function) const;
  void OnSnapshotTaken(const FunctionVersion& function,
                       Result<std::shared_ptr<SnapshotSource>> source,
                       std::chrono::milliseconds took);
  // At daemon start: the current version's snapshot, if one is on disk.
  void ReopenSnapshot(const FunctionVersion& function);
  // Forgets the function's snapshot and deletes its file.
  void DropSnapshot(const std::string& name);
  // Deletes the snapshot file at `path` on a boot thread, if it is still the file `identity`.
  void RemoveSnapshotFile(const std::string& path, std::optional<std::pair<dev_t, ino_t>> identity);
  void SnapshotSources(const FunctionVersion& function, BootSources* sources) const;
  // After the first invocation of a restored instance, once per snapshot: records the image pages
  // it touched as the snapshot's working set (cold boots prefetch them), then reopens it.
  void MaybeRecordWorkingSet(const std::string& function, const InvokeReply& reply);
  void RestoreBoot(const BootRequest& request, BootDone done);
  // A warm boot handed to a parked shell: reads ember-restore's report on the io thread.
  void AwaitRestoreReport(const BootRequest& request, std::shared_ptr<SnapshotSource> source,
                          const FunctionVersion& function, const std::string& version,
                          Launcher::ShellRestore handed, BootDone done);
  // A restore on a boot thread (into a parked shell if one is left, else a new sandbox).
  void RestoreOnBootPool(const BootRequest& request, std::shared_ptr<SnapshotSource> source,
                         const FunctionVersion& function, const std::string& version,
                         BootDone done);
  // Replaces the shells a restore used, after a pause (engine_snapshots.cc: RestoreBoot).
  void RefillRestoreShellsLater(const FunctionVersion& function);
  tl::expected<BootedInstance, BootError> RestoreOnBootThread(const BootRequest& request,
                                                              const SnapshotSource& source,
                                                              const std::string& version);
  SnapshotView ViewOfSnapshot(const std::string& function, const SnapshotSlot& slot) const;
  // Restore shells (engine_shells.cc): kept while the function has a ready snapshot.
  void EnableRestoreShells(const FunctionVersion& function);
  void DisableRestoreShells(const std::string& function);
  void RefillRestoreShells(const FunctionVersion& function);
  void DestroyShells(std::vector<RestoreShell> shells);  // on a boot thread
  void TrimRestoreShells();
  void BuildTemplate(const FunctionVersion& function);
  void OnTemplateBuilt(const FunctionVersion& function, const std::string& template_id,
                       tl::expected<BootedInstance, BootError> booted,
                       Result<std::shared_ptr<sandbox::NetnsPool>> netns);
  void ForkBoot(const BootRequest& request, BootDone done);
  // Claims the template's next children's cgroup and sockets ahead, on a boot thread, up to a
  // few sets (Template::TakePrepared).
  void PrepareForkResources(const std::shared_ptr<Template>& t, const Manifest& manifest);
  void RetireTemplate(const std::string& function);
  void OnTemplateDead(const std::string& function, Template& dead);
  void StopIdleRetiredTemplates();
  void StopAllTemplates();
  TemplateView ViewOf(const std::string& function, const TemplateSlot* slot,
                      const Template* t) const;
  void Log(Instance& instance, std::string_view text);
  void CommitDeploy(const std::string& name, StagedFunction staged, BootedInstance booted,
                    const std::string& instance_id, std::chrono::steady_clock::time_point start,
                    const std::function<void(DeployReply)>& done);
  void DropUnusedVersions(const std::string& function);
  void ScheduleTick();
  void RegisterMetrics();
  void CountInvocation(const std::string& function, const InvokeReply& reply);

  boost::asio::io_context& io_;
  EngineOptions options_;
  daemon::MetricsRegistry* metrics_;
  boost::asio::thread_pool boot_pool_;
  std::shared_ptr<BootGate> boot_gate_;
  // Builds and destroys restore shells: a refill must not hold up a boot thread a restore needs
  // next (a shell is the parent-death anchor of its sandbox: the thread lives as long as this).
  boost::asio::thread_pool shell_builder_{1};
  std::unique_ptr<Launcher> launcher_;
  std::optional<FunctionStore> store_;
  SchedulerHost host_;
  std::map<std::string, std::unique_ptr<FunctionScheduler>> schedulers_;
  std::map<std::string, TemplateSlot> templates_;  // by function
  std::map<std::string, SnapshotSlot> snapshots_;  // by function
  // Serializes, on the boot threads, everything that writes or removes snapshot files.
  std::mutex snapshot_files_mutex_;
  ShellPool<RestoreShell> restore_shells_;
  size_t shell_tasks_ = 0;  // shell refills and teardowns under way (the shutdown waits)
  // Templates of older versions (or removed functions), kept until their last child is gone.
  std::vector<std::pair<std::string, std::shared_ptr<Template>>> retired_;
  std::set<std::string> deploying_;
  std::string logs_dir_;                                  // <data_dir>/logs
  std::map<std::string, std::unique_ptr<LogSink>> logs_;  // by instance id
  boost::asio::steady_timer tick_;
  bool shutting_down_ = false;
  size_t disposing_ = 0;
};

}  // namespace ember::engine
