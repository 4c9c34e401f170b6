// Engine: snapshots for cold and warm boot (DESIGN.md "Boot modes"). Each function has at most
// one snapshot, of its current version: taken on request (`ember snapshot NAME`, POST
// /v1/functions/{name}/snapshot) or right after a deploy (`snapshot = "deploy"`), kept at
// <data-dir>/snapshots/<function>-<version>.img and reopened when the daemon starts. A restore
// boot maps it (warm when it is in the page cache, cold when not: then the recorded working set
// is read first); a redeploy or a removal deletes it (instances restored from it keep their
// mappings: the file's pages live until the last of them is gone).
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <utility>

#include "base/fs.h"
#include "base/log.h"
#include "engine/engine.h"
#include "snapshot/image_writer.h"
#include "snapshot/working_set.h"

namespace ember::engine {
namespace {

namespace asio = boost::asio;

// Failed recordings of a snapshot's working set before it is left without one.
constexpr int kWorkingSetAttempts = 3;
// When a restored instance got no invocation of its own, its shell is replaced after this.
constexpr std::chrono::milliseconds kShellRefillFallback(50);

std::string NewSnapshotSourceId() { return "s-" + NewInstanceId().substr(2); }

// Which file a path names now: snapshot files are replaced by rename (a new snapshot, a
// rewritten working set), so "the snapshot at this path" is checked by device and inode.
std::optional<std::pair<dev_t, ino_t>> FileIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair{st.st_dev, st.st_ino};
}

std::optional<std::pair<dev_t, ino_t>> FileIdentity(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return std::pair{st.st_dev, st.st_ino};
}

}  // namespace

std::string Engine::SnapshotPath(const FunctionVersion& function) const {
  return options_.launcher.data_dir + "/snapshots/" + function.manifest.name + "-" +
         function.version + ".img";
}

void Engine::TakeSnapshot(const std::string& name, std::function<void(Result<SnapshotView>)> done) {
  auto it = schedulers_.find(name);
  if (it == schedulers_.end()) {
    return done(Fail(ErrorCode::kNotFound, "no function named '" + name + "'"));
  }
  if (shutting_down_) return done(Fail(ErrorCode::kUnavailable, "the daemon is stopping"));
  FunctionVersion function = it->second->function();
  SnapshotSlot& slot = snapshots_[name];
  if (slot.state == "taking" && slot.version == function.version) {
    slot.waiters.push_back(std::move(done));
    return;
  }
  DropSnapshot(name);
  SnapshotSlot& fresh = snapshots_[name];
  fresh.state = "taking";
  fresh.version = function.version;
  fresh.path = SnapshotPath(function);
  fresh.waiters.push_back(std::move(done));
  BootRequest request{NewSnapshotSourceId(), function.manifest, function.code_dir, BootMode::kPlain,
                      false};
  std::string path = fresh.path;
  asio::post(boot_pool_, [this, request, path, function] {
    auto start = std::chrono::steady_clock::now();
    auto source = std::make_shared<Result<std::shared_ptr<SnapshotSource>>>(
        Fail(ErrorCode::kUnavailable, "not taken"));
    Status taken = MakeDirs(options_.launcher.data_dir + "/snapshots");
    if (taken) {
      // Booting the instance may take seconds (its init): the files' lock covers only the write,
      // so that removals and working-set rewrites queued meanwhile do not hold up boot threads.
      auto state = launcher_->CheckpointInstance(request);
      std::lock_guard lock(snapshot_files_mutex_);
      taken = state ? snapshot::WriteImage(*state, path) : Fail(state.error());
    }
    *source = taken ? launcher_->OpenSnapshot(function.manifest, path) : Fail(taken.error());
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    asio::post(io_, [this, function, source, took] {
      OnSnapshotTaken(function, std::move(*source), took);
    });
  });
}

void Engine::OnSnapshotTaken(const FunctionVersion& function,
                             Result<std::shared_ptr<SnapshotSource>> source,
                             std::chrono::milliseconds took) {
  const std::string& name = function.manifest.name;
  auto it = snapshots_.find(name);
  if (it == snapshots_.end() || it->second.version != function.version) {
    // Redeployed or removed while it was taken: the image is of nobody's current version.
    if (source) RemoveSnapshotFile((*source)->path(), FileIdentity((*source)->image_fd()));
    return;
  }
  SnapshotSlot& slot = it->second;
  auto waiters = std::move(slot.waiters);
  slot.waiters.clear();
  if (source) {
    slot.state = "ready";
    slot.source = std::move(*source);
    slot.taken = std::chrono::system_clock::now();
    spdlog::info("snapshot of {} version {}: {} in {} ms", name, function.version,
                 slot.source->path(), took.count());
    EnableRestoreShells(function);
  } else {
    slot.state = "failed";
    slot.reason = source.error().ToString();
    spdlog::warn("snapshot of {}: {}", name, slot.reason);
  }
  for (auto& waiter : waiters) {
    if (slot.source) {
      waiter(ViewOfSnapshot(name, slot));
    } else {
      waiter(Fail(source.error()));
    }
  }
}

void Engine::ReopenSnapshot(const FunctionVersion& function) {
  std::string path = SnapshotPath(function);
  if (!PathExists(path)) return;
  const std::string& name = function.manifest.name;
  snapshots_[name] = SnapshotSlot{"taking", "", function.version, path};
  asio::post(boot_pool_, [this, function, path] {
    auto source = std::make_shared<Result<std::shared_ptr<SnapshotSource>>>(
        launcher_->OpenSnapshot(function.manifest, path));
    asio::post(io_, [this, function, path, source] {
      if (!*source) {
        // Taken by another ember or on another kernel: unusable here, and rebuilt on demand.
        spdlog::warn("snapshot of {} not reopened (removed): {}", function.manifest.name,
                     source->error().ToString());
        DropSnapshot(function.manifest.name);
        RemoveSnapshotFile(path, FileIdentity(path));
        if (function.manifest.snapshot_policy == SnapshotPolicy::kOnDeploy) {
          TakeSnapshot(function.manifest.name, [](const Result<SnapshotView>&) {});
        }
        return;
      }
      OnSnapshotTaken(function, std::move(*source), std::chrono::milliseconds(0));
    });
  });
}

void Engine::DropSnapshot(const std::string& name) {
  auto it = snapshots_.find(name);
  if (it == snapshots_.end()) return;
  for (auto& waiter : it->second.waiters) {
    waiter(Fail(ErrorCode::kUnavailable, "the snapshot of " + name + " was replaced"));
  }
  if (it->second.source) {
    RemoveSnapshotFile(it->second.path, FileIdentity(it->second.source->image_fd()));
  }
  snapshots_.erase(it);
  DisableRestoreShells(name);
}

void Engine::RemoveSnapshotFile(const std::string& path,
                                std::optional<std::pair<dev_t, ino_t>> identity) {
  if (!identity) return;
  // Off the io thread, and after a working-set rewrite of the same file that may be under way;
  // only if the path still names that file (a new snapshot of the same version may be there).
  asio::post(boot_pool_, [this, path, identity] {
    std::lock_guard lock(snapshot_files_mutex_);
    if (FileIdentity(path) != identity) return;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("remove snapshot {}: {}", path, std::strerror(errno));
    }
  });
}

void Engine::SnapshotSources(const FunctionVersion& function, BootSources* sources) const {
  auto it = snapshots_.find(function.manifest.name);
  if (it == snapshots_.end()) {
    sources->snapshot_reason = "no snapshot has been taken (ember snapshot " +
                               function.manifest.name + ", or snapshot = \"deploy\")";
  } else if (it->second.version != function.version) {
    sources->snapshot_reason = "the snapshot is of another version";
  } else if (it->second.state != "ready" || !it->second.source) {
    sources->snapshot_reason = "snapshot " + it->second.state +
                               (it->second.reason.empty() ? "" : ": " + it->second.reason);
  } else {
    sources->snapshot_on_disk = true;
    sources->snapshot_resident = it->second.source->Resident();
    if (!sources->snapshot_resident) {
      sources->snapshot_reason = "the snapshot is not in the page cache";
    }
  }
}

void Engine::RestoreBoot(const BootRequest& request, BootDone done) {
  auto it = snapshots_.find(request.manifest.name);
  auto scheduler = schedulers_.find(request.manifest.name);
  std::shared_ptr<SnapshotSource> source =
      it == snapshots_.end() || it->second.state != "ready" ? nullptr : it->second.source;
  if (!source || scheduler == schedulers_.end()) {
    done(tl::unexpected(BootError{
        Error(ErrorCode::kUnavailable, "function " + request.manifest.name + " has no snapshot"),
        std::nullopt, ""}));
    return;
  }
  FunctionVersion function = scheduler->second->function();
  std::string version = it->second.version;
  // A warm boot with a parked shell needs no boot thread: the handoff is one sendmsg and the
  // report is read here, asynchronously (two thread hops fewer on its path).
  if (request.mode == BootMode::kWarm) {
    if (auto shell = restore_shells_.Take(request.manifest.name, version,
                                          ShellPool<RestoreShell>::Clock::now())) {
      auto handed = launcher_->RestoreInShell(request, *source, std::move(*shell));
      if (handed) {
        AwaitRestoreReport(request, source, function, version, std::move(*handed), std::move(done));
        return;
      }
      // A shell that died parked is not the instance's problem: a new sandbox, below.
      spdlog::warn("{} (restoring {} into a new sandbox)", handed.error().ToString(),
                   request.instance_id);
    }
  }
  RestoreOnBootPool(request, std::move(source), function, version, std::move(done));
}

void Engine::RestoreOnBootPool(const BootRequest& request, std::shared_ptr<SnapshotSource> source,
                               const FunctionVersion& function, const std::string& version,
                               BootDone done) {
  asio::post(boot_pool_,
             [this, source, request, function, version, done = std::move(done)]() mutable {
               auto result = std::make_shared<tl::expected<BootedInstance, BootError>>(
                   RestoreOnBootThread(request, *source, version));
               asio::post(io_, [this, result, function, done = std::move(done)] {
                 done(std::move(*result));
                 // The shell it used is replaced once the instance answered its first invocation
                 // (Engine::Invoke): building one clones the daemon, whose memory map's lock the
                 // copy holds (stalling this thread), and takes a CPU the restored process needs
                 // for its first run (on 2 CPUs that cost a warm boot ~0.9 ms). This timer is for
                 // a boot that gets no invocation of its own (booted for the queue, or failed).
                 RefillRestoreShellsLater(function);
               });
             });
}

void Engine::RefillRestoreShellsLater(const FunctionVersion& function) {
  auto timer = std::make_shared<asio::steady_timer>(io_, kShellRefillFallback);
  timer->async_wait(
      [this, timer, function](const boost::system::error_code&) { RefillRestoreShells(function); });
}

void Engine::AwaitRestoreReport(const BootRequest& request, std::shared_ptr<SnapshotSource> source,
                                const FunctionVersion& function, const std::string& version,
                                Launcher::ShellRestore handed, BootDone done) {
  struct Waiting {
    Waiting(asio::io_context& io, Launcher::ShellRestore h)
        : handed(std::move(h)), pipe(io, handed.report.release()), deadline(io) {}
    Launcher::ShellRestore handed;
    asio::posix::stream_descriptor pipe;
    asio::steady_timer deadline;
    snapshot::RestoreReport report{};
  };
  auto waiting = std::make_shared<Waiting>(io_, std::move(handed));
  waiting->deadline.expires_at(waiting->handed.start + launcher_->options().init_timeout);
  waiting->deadline.async_wait([waiting](const boost::system::error_code& ec) {
    if (!ec) waiting->pipe.cancel();  // the read below ends with operation_aborted
  });
  asio::async_read(
      waiting->pipe, asio::buffer(&waiting->report, sizeof waiting->report),
      [this, waiting, request, source, function, version, done = std::move(done)](
          const boost::system::error_code& ec, size_t) mutable {
        waiting->deadline.cancel();
        if (!ec) {
          done(launcher_->FinishRestore(request, *source, std::move(waiting->handed.booted),
                                        waiting->report, waiting->handed.start));
          RefillRestoreShellsLater(function);
          return;
        }
        std::string why =
            ec == asio::error::operation_aborted
                ? "ember-restore sent no report in time"
                : "ember-restore closed its report channel without a report (" + ec.message() + ")";
        bool dropped_unread = waiting->handed.DroppedUnread();
        // Its sandbox is torn down (killed, reaped) off the io thread.
        auto doomed = std::make_shared<sandbox::Sandbox>(std::move(waiting->handed.booted.sandbox));
        asio::post(boot_pool_, [doomed] {
          if (auto destroyed = doomed->Destroy(); !destroyed) {
            spdlog::warn("teardown of {}: {}", doomed->id(), destroyed.error().ToString());
          }
        });
        if (dropped_unread) {
          spdlog::warn(
              "restore shell of {} died before it read its handoff: {} (restoring {} into "
              "a new sandbox)",
              request.manifest.name, why, request.instance_id);
          RestoreOnBootPool(request, std::move(source), function, version, std::move(done));
          return;
        }
        done(tl::unexpected(
            BootError{Error(ErrorCode::kUnavailable, why)
                          .Context("restore (warm boot) instance " + request.instance_id + " of " +
                                   request.manifest.name + " from " + source->path()),
                      std::nullopt, ""}));
        RefillRestoreShellsLater(function);
      });
}

tl::expected<BootedInstance, BootError> Engine::RestoreOnBootThread(const BootRequest& request,
                                                                    const SnapshotSource& source,
                                                                    const std::string& version) {
  // A cold boot reads the image from disk: whatever of it is cached but not mapped goes first.
  if (request.mode == BootMode::kCold) {
    if (auto evicted = source.Evict(); !evicted) spdlog::warn("{}", evicted.error().ToString());
  }
  auto shell =
      restore_shells_.Take(request.manifest.name, version, ShellPool<RestoreShell>::Clock::now());
  return launcher_->Restore(request, source, std::move(shell));
}

void Engine::MaybeRecordWorkingSet(const std::string& function, const InvokeReply& reply) {
  bool restored = reply.boot_mode == BootMode::kCold || reply.boot_mode == BootMode::kWarm;
  bool fresh = reply.timings.sandbox.count() > 0;  // 0: the instance was reused
  if (reply.outcome != InvokeOutcome::kOk || !restored || !fresh) return;
  auto slot = snapshots_.find(function);
  auto scheduler = schedulers_.find(function);
  if (slot == snapshots_.end() || scheduler == schedulers_.end()) return;
  SnapshotSlot& s = slot->second;
  if (s.state != "ready" || !s.source || s.source->working_set_pages() > 0 ||
      s.recording_working_set) {
    return;
  }
  auto instance = scheduler->second->Find(reply.instance_id);
  if (!instance || instance->pid() <= 0) return;
  s.recording_working_set = true;
  FunctionVersion version = scheduler->second->function();
  pid_t pid = instance->pid();
  std::string path = s.path;
  auto identity = FileIdentity(s.source->image_fd());
  std::shared_ptr<SnapshotSource> recorded_from = s.source;
  asio::post(boot_pool_, [this, version, pid, path, identity, recorded_from] {
    auto reopened = std::make_shared<Result<std::shared_ptr<SnapshotSource>>>(
        Fail(ErrorCode::kUnavailable, "the restored instance maps no page of the image"));
    auto pages = snapshot::RecordWorkingSet(pid, path);
    if (pages && !pages->empty()) {
      std::lock_guard lock(snapshot_files_mutex_);
      // The instance's image is the file at `path` unless it was replaced or removed meanwhile.
      Status rewritten = FileIdentity(path) == identity
                             ? snapshot::RewriteWorkingSet(path, *pages)
                             : Fail(ErrorCode::kUnavailable, "the snapshot was replaced");
      *reopened =
          rewritten ? launcher_->OpenSnapshot(version.manifest, path) : Fail(rewritten.error());
    } else if (!pages) {
      *reopened = Fail(pages.error());
    }
    asio::post(io_, [this, version, path, reopened, recorded_from] {
      auto it = snapshots_.find(version.manifest.name);
      if (it == snapshots_.end() || it->second.source != recorded_from) {
        // Dropped or replaced while this ran: a file it rewrote is nobody's.
        if (*reopened) RemoveSnapshotFile(path, FileIdentity((**reopened)->image_fd()));
        return;
      }
      if (*reopened) {
        spdlog::info("snapshot of {}: working set of {} pages recorded", version.manifest.name,
                     (**reopened)->working_set_pages());
        it->second.source = std::move(**reopened);
      } else {
        // Another restored instance tries again (this one may just have been stopped before it
        // was read); after a few failures the snapshot stays without one, and cold boots fault
        // pages in as they come.
        bool retry = ++it->second.working_set_failures < kWorkingSetAttempts;
        it->second.recording_working_set = !retry;
        spdlog::warn("snapshot of {}: working set not recorded{}: {}", version.manifest.name,
                     retry ? " (a later restore tries again)" : "", reopened->error().ToString());
      }
    });
  });
}

SnapshotView Engine::ViewOfSnapshot(const std::string& function, const SnapshotSlot& slot) const {
  SnapshotView view;
  view.function = function;
  view.version = slot.version;
  view.state = slot.state;
  view.reason = slot.reason;
  view.path = slot.path;
  view.taken = slot.taken;
  if (slot.source) {
    view.size_bytes = slot.source->size_bytes();
    view.resident = slot.source->Resident();
    view.working_set_pages = slot.source->working_set_pages();
  }
  if (auto shells = restore_shells_.Stats(function)) view.shells = *shells;
  return view;
}

std::optional<SnapshotView> Engine::GetSnapshot(const std::string& function) const {
  auto it = snapshots_.find(function);
  if (it == snapshots_.end()) return std::nullopt;
  return ViewOfSnapshot(function, it->second);
}

}  // namespace ember::engine
