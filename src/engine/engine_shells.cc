// Engine: restore shells (launcher.h RestoreShell, shell_pool.h). While a function has a ready
// snapshot, a few restore sandboxes of it are kept built and parked, so that a cold or warm boot
// only hands one its instance: the namespaces, the cgroup, the overlay and the exec of
// ember-restore are off the hot path. Shells are built and destroyed on a thread of their own
// (not the boot threads, which restores need meanwhile); the pool's size follows demand (a restore
// that found none doubles it, idle periods halve it).
#include <boost/asio/post.hpp>

#include "base/log.h"
#include "engine/engine.h"

namespace ember::engine {

namespace asio = boost::asio;

void Engine::EnableRestoreShells(const FunctionVersion& function) {
  if (shutting_down_) return;
  DestroyShells(restore_shells_.Enable(function.manifest.name, function.version,
                                       ShellPool<RestoreShell>::Clock::now()));
  RefillRestoreShells(function);
}

void Engine::DisableRestoreShells(const std::string& function) {
  DestroyShells(restore_shells_.Disable(function));
}

void Engine::RefillRestoreShells(const FunctionVersion& function) {
  if (shutting_down_ || !restore_shells_.StartRefill(function.manifest.name, function.version)) {
    return;
  }
  ++shell_tasks_;
  asio::post(shell_builder_, [this, function] {
    const std::string& name = function.manifest.name;
    while (restore_shells_.NeedsAnother(name, function.version)) {
      BootRequest request{NewInstanceId(), function.manifest, function.code_dir, BootMode::kWarm,
                          false};
      auto shell = launcher_->BuildRestoreShell(request);
      if (!shell) {
        // Restores still work without shells (each builds its own sandbox); the next restore
        // tries again.
        spdlog::warn("{}", shell.error().ToString());
        restore_shells_.EndRefill(name);
        break;
      }
      // Handed back (and destroyed here) if the function moved on while it was built.
      restore_shells_.Put(name, function.version, std::move(*shell));
    }
    asio::post(io_, [this] { --shell_tasks_; });
  });
}

void Engine::DestroyShells(std::vector<RestoreShell> shells) {
  if (shells.empty()) return;
  ++shell_tasks_;
  auto doomed = std::make_shared<std::vector<RestoreShell>>(std::move(shells));
  asio::post(shell_builder_, [this, doomed] {
    doomed->clear();  // each sandbox is killed, reaped and its cgroup returned
    asio::post(io_, [this] { --shell_tasks_; });
  });
}

void Engine::TrimRestoreShells() {
  DestroyShells(restore_shells_.Trim(ShellPool<RestoreShell>::Clock::now()));
}

}  // namespace ember::engine
