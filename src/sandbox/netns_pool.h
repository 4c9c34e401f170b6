// Network namespaces made ahead of time for the fork-booted children of one template.
//
// Creating a network namespace costs ~0.7 ms here and is serialized in the kernel; joining one
// with setns costs ~30 µs. So a fork boot never creates one: it takes a ready namespace from
// this pool and the child joins it. A namespace must be owned by the template's user namespace,
// since the child (which lives in that user namespace, with its capabilities there) joins it
// with setns, and setns needs CAP_SYS_ADMIN in the namespace's owner.
//
// Mechanism: a helper process forked from the pool's own thread joins the owner's user namespace
// (setns, as host root), then, on request, unshares a new network namespace, brings `lo` up when
// the mode asks for it, and passes an fd of the namespace back over a socket (SCM_RIGHTS). The
// helper is single-threaded and allocates nothing after the fork (the daemon is multi-threaded).
// It dies with the pool (destructor: SIGKILL and reap) and with the pool's thread
// (PR_SET_PDEATHSIG follows the thread that forked it).
//
// Sizing adapts to demand: the pool keeps `target` namespaces ready; a Take() that finds none
// ready (a miss) doubles the target up to max_ready; a long idle period lets it shrink back
// towards min_ready. Take() never waits for the background: on a miss it asks the helper for
// one namespace and waits for just that one.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/unique_fd.h"
#include "sandbox/spec.h"

namespace ember::sandbox {

struct NetnsPoolOptions {
  pid_t owner_pid = -1;  // host pid of a process in the user namespace that will own the netns
  NetworkMode mode = NetworkMode::kLoopback;  // kLoopback: lo up; kNone: no interface up
  size_t min_ready = 2;
  size_t max_ready = 64;
};

struct NetnsPoolStats {
  size_t ready = 0;     // namespaces waiting to be taken
  size_t target = 0;    // what the background keeps ready
  uint64_t taken = 0;   // Take() calls that succeeded
  uint64_t misses = 0;  // of those, how many found nothing ready
  uint64_t created = 0;
};

class NetnsPool {
 public:
  // Starts the helper and the background refill. Fails naming the step (open the owner's user
  // namespace, fork, setns) when the helper cannot be set up.
  static Result<std::unique_ptr<NetnsPool>> Create(const NetnsPoolOptions& options);
  ~NetnsPool();
  NetnsPool(const NetnsPool&) = delete;
  NetnsPool& operator=(const NetnsPool&) = delete;

  // An O_RDONLY|O_CLOEXEC fd of a fresh network namespace owned by the owner's user namespace.
  // Thread-safe. On a miss, creates one synchronously (and raises the target).
  Result<UniqueFd> Take();
  // A ready one, or nullopt at once (nothing counted as a miss): for the io thread, which must
  // not wait for a creation.
  std::optional<UniqueFd> TryTake();
  NetnsPoolStats Stats() const;

  class Impl;

 private:
  explicit NetnsPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::sandbox
