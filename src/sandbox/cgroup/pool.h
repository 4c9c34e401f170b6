// A pool of pre-created cgroups (RunD's "lightweight cgroup"): starting a sandbox claims a
// cgroup that already exists instead of creating one, because cgroup creation costs a mkdir per
// hierarchy (~70µs for memory+cpu+pids on v1 here) and serialises on the kernel's cgroup mutex
// exactly when a burst of starts arrives.
//
// Layout: <root>/<name>/pool-<n> under every hierarchy root ember uses (memory, cpu, pids on v1;
// the cgroup2 root on v2, with "+memory +cpu +pids" in the parents' cgroup.subtree_control).
// Claims work across processes without a daemon: a slot is held through a byte lock in
// <lock_dir>/slots.lock (slot_locks.h: one fd per pool, not per slot), so a crashed holder's
// claim vanishes with it and the slot is reset (leftover processes killed) before anyone reuses
// it. See slot.h for the state record in <lock_dir>/pool-<n>.lock and docs/cgroups.md for the
// design.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/limits.h"
#include "sandbox/cgroup/slot.h"
#include "sandbox/cgroup/slot_locks.h"
#include "sandbox/spec.h"

namespace ember::cgroup {

struct PoolOptions {
  std::string name = "ember";  // the parent cgroup under each hierarchy root
  std::string lock_dir;        // e.g. <run-dir>/cgroups; holds one lock file per slot
  size_t target_free = 4;      // what Fill tops the pool up to
  // false: slots have cpu and pids cgroups only, and their processes are charged to a memory
  // cgroup the caller picks (v1 only, where each controller is its own hierarchy). Fork-boot
  // children share their template's memory cgroup this way: every online memory cgroup costs
  // kernel memory in proportion to the host's mounted filesystems (its shrinker map), so one
  // per instance grows quadratically with the instances (docs/cgroups.md).
  bool memory = true;
  // How long Release waits for killed processes to leave the cgroup.
  std::chrono::milliseconds release_timeout{2000};
  MkdirHook after_mkdir;  // tests only: emulates cgroupfs in a fixture tree
  // The daemon's pools: held exclusively (flock on the pool's parent cgroup) for the Pool's
  // life. Slot locks live in lock_dir, which is per run dir: two daemons with different run
  // dirs but the same pool name would each take the other's claimed slots for stale ones and
  // kill their sandboxes. `ember run` shares the pool with a daemon of the same run dir.
  bool exclusive = false;
};

// A claimed slot. Move-only; the destructor releases it (errors are logged).
class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  const std::string& slot() const { return slot_; }
  const SlotDirs& dirs() const { return dirs_; }
  bool held() const { return lock_.held(); }

  // Sets memory, cpu and pids limits; unset ones become unlimited (the cgroup is reused). A slot
  // without a memory cgroup (PoolOptions::memory) takes only the cpu and pids limits.
  Status Apply(const sandbox::CgroupLimits& limits);
  // Moves `pid` into the slot in every hierarchy used. The launcher attaches the child before
  // releasing it, so none of the sandbox's own code runs outside the cgroup.
  Status Attach(pid_t pid);
  // Write-only fds of cgroup.procs in every hierarchy used, for a fork-boot child that moves
  // itself in (writing "0"): the kernel checks the opener's credentials, ours.
  Result<std::vector<UniqueFd>> OpenProcsFiles() const;
  // Sends SIGKILL to every process in the slot, without waiting (a fork-boot instance, which
  // ember did not clone itself and holds no pidfd of).
  void KillAll() const;
  // O_DIRECTORY fd of the v2 cgroup, for clone3(CLONE_INTO_CGROUP); -1 on v1.
  int v2_dir_fd() const { return v2_dir_.get(); }
  // OOM kills in this slot since Claim (the kernel's counter cannot be reset: this subtracts the
  // value seen at Claim).
  Result<uint64_t> OomKills() const;
  // Highest memory usage since Claim.
  Result<uint64_t> MemoryPeakBytes() const;
  // Returns the slot to the pool: kills what is left in it, waits until it is empty, leaves its
  // memory charge, marks it free and unlocks. On failure the slot is unlocked but stays marked
  // claimed, so the next Claim or CleanupStale retries the reset.
  Status Release();

 private:
  friend class Pool;
  std::string slot_;
  std::string lock_path_;
  std::string suffix_;  // "/<name>/<slot>", as /proc/<pid>/cgroup shows it
  Version version_ = Version::kV1;
  SlotDirs dirs_;
  LimitFeatures features_;
  std::chrono::milliseconds release_timeout_{2000};
  SlotLock lock_;
  UniqueFd v2_dir_;
  UniqueFd peak_fd_;  // v2 memory.peak, reset at Claim (per-fd since 6.12)
  uint64_t oom_kills_at_claim_ = 0;
};

// The pool of memory-less slots beside pool `name` (PoolOptions::memory = false).
inline std::string ForkPoolName(const std::string& name) { return name + "-fork"; }

class Pool {
 public:
  // Creates the parent cgroups (and on v2 enables the controllers for them) and the lock dir.
  static Result<Pool> Open(const Hierarchy& hierarchy, PoolOptions options);

  // The hot path: takes a free pre-created slot. Only when none is free does it create one (and
  // says so at debug level, since that means Fill is not keeping up; *created tells the caller).
  Result<Lease> Claim(bool* created = nullptr);
  // What Fill tops the pool up to (the engine adapts it to demand).
  void set_target_free(size_t target) { options_.target_free = target; }
  // Off the hot path: creates slots until `target_free` are free, and removes free slots beyond
  // that (what a burst left). Returns how many it made.
  Result<size_t> Fill();
  // Resets slots whose holder died without releasing them. Returns how many it reset.
  Result<size_t> CleanupStale();
  // Removes the whole tree (tests, uninstall); fails with kBusy, after removing everything else,
  // if a slot is held by a live lease.
  Status Destroy();

  // Slot names, by number; and how many of them could be claimed right now.
  Result<std::vector<std::string>> Slots() const;
  Result<size_t> CountFree() const;

  const Hierarchy& hierarchy() const { return hierarchy_; }
  const PoolOptions& options() const { return options_; }
  std::string LockPath(const std::string& slot) const;

 private:
  Pool(Hierarchy hierarchy, PoolOptions options)
      : hierarchy_(std::move(hierarchy)), options_(std::move(options)) {}
  // Makes a new slot; returns it locked (state "creating").
  Result<std::pair<std::string, SlotLock>> CreateSlot();
  // Brings a slot whose lock we hold to "free" if its record says otherwise.
  Status RecoverIfStale(const std::string& slot, bool* was_stale);
  Result<Lease> MakeLease(const std::string& slot, SlotLock lock);
  // The slot's lock; kBusy when someone holds it.
  Result<SlotLock> TryLock(const std::string& slot) const {
    return locks_->TryLock(SlotNumber(slot));
  }
  std::string Suffix(const std::string& slot) const { return "/" + options_.name + "/" + slot; }
  // The slot's directories (without memory's when the pool has none).
  SlotDirs DirsOfSlot(const std::string& slot) const;
  // The hierarchy roots the pool makes directories under; the first lists the slots.
  std::vector<std::string> Roots() const;

  // Tries to claim one slot; nullopt when another holder has it (or it cannot be reset).
  Result<std::optional<Lease>> TryClaim(const std::string& slot);

  Hierarchy hierarchy_;
  PoolOptions options_;
  LimitFeatures features_;
  std::shared_ptr<SlotLocks> locks_;
  UniqueFd owner_;  // the parent cgroup, flocked, when options_.exclusive
  // Slots Fill last saw free, tried first by Claim: with thousands of slots held, scanning them
  // all (a lock attempt each) on every claim would make the hot path grow with the pool. A hint
  // may be stale (another process claimed it); Claim then falls back to the scan, or, in an
  // exclusive pool (whose free slots are all hinted), creates a slot.
  std::deque<std::string> free_hint_;
  long next_number_ = 0;  // where CreateSlot starts looking for an unused slot number
};

}  // namespace ember::cgroup
