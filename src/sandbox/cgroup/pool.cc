#include "sandbox/cgroup/pool.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

namespace ember::cgroup {
namespace {

constexpr std::string_view kV2Controllers = "+memory +cpu +pids";

// Enables memory, cpu and pids for the children of a v2 cgroup, unless they already are (a
// read is cheaper than a write that makes the kernel walk the subtree).
Status EnableV2Controllers(const std::string& dir) {
  std::string path = dir + "/cgroup.subtree_control";
  EMBER_ASSIGN_OR_RETURN(std::string enabled, ReadFile(path));
  std::istringstream in(enabled);
  std::set<std::string> words;
  for (std::string w; in >> w;) words.insert(w.front() == '+' ? w.substr(1) : w);
  if (words.count("memory") && words.count("cpu") && words.count("pids")) return Ok();
  return WriteControlFile(path, kV2Controllers);
}

Status ValidateName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.rfind("cgroup.", 0) == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid cgroup pool name '" + name + "': use one path component");
  }
  return Ok();
}

}  // namespace

Result<Pool> Pool::Open(const Hierarchy& hierarchy, PoolOptions options) {
  EMBER_TRY(ValidateName(options.name));
  if (!options.memory && hierarchy.version != Version::kV1) {
    return Fail(ErrorCode::kUnsupported,
                "cgroup pool " + options.name +
                    " without memory cgroups needs cgroup v1 (on v2 a process's memory cgroup "
                    "is the one its other controllers are in)");
  }
  if (options.lock_dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "cgroup pool: no lock directory given");
  }
  EMBER_TRY_CTX(MakeDirs(options.lock_dir, 0700), "open cgroup pool");
  Pool pool(hierarchy, std::move(options));
  const std::string& name = pool.options_.name;
  auto locks = SlotLocks::Open(pool.options_.lock_dir);
  if (!locks) return Fail(std::move(locks).error().Context("open cgroup pool " + name));
  pool.locks_ = std::move(*locks);
  for (const std::string& root : pool.Roots()) {
    if (hierarchy.version == Version::kV2) {
      // A v2 cgroup can only enable what its parent enabled for it, so the root comes first.
      EMBER_TRY_CTX(EnableV2Controllers(root), "open cgroup pool " + name);
    }
    std::string parent = root + "/" + name;
    if (!PathExists(parent)) {
      EMBER_TRY_CTX(MakeCgroupDir(parent, pool.options_.after_mkdir), "open cgroup pool");
    }
    if (hierarchy.version == Version::kV2) {
      EMBER_TRY_CTX(EnableV2Controllers(parent), "open cgroup pool " + name);
    }
  }
  if (pool.options_.exclusive) {
    std::string parent = pool.Roots().front() + "/" + name;
    EMBER_ASSIGN_OR_RETURN(pool.owner_, OpenFile(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (::flock(pool.owner_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Fail(ErrorCode::kBusy, "cgroup pool " + name + " (" + parent +
                                          ") is in use by another ember daemon: give each "
                                          "daemon its own pool name (EMBER_CGROUP_NAME)");
      }
      return FailErrno("open cgroup pool " + name + ": flock " + parent);
    }
  }
  // The parent has the same optional files as its slots; one probe serves every Apply.
  pool.features_ = ProbeLimitFeatures(hierarchy.version, pool.Roots().front() + "/" + name);
  return pool;
}

std::vector<std::string> Pool::Roots() const {
  std::vector<std::string> roots = hierarchy_.Roots();
  if (!options_.memory) {
    std::string memory = hierarchy_.RootFor(Controller::kMemory);
    std::erase_if(roots, [&](const std::string& root) {
      return root == memory && root != hierarchy_.RootFor(Controller::kCpu) &&
             root != hierarchy_.RootFor(Controller::kPids);
    });
  }
  return roots;
}

SlotDirs Pool::DirsOfSlot(const std::string& slot) const {
  SlotDirs dirs = DirsOf(hierarchy_, options_.name, slot);
  if (!options_.memory) dirs.memory.clear();
  return dirs;
}

std::string Pool::LockPath(const std::string& slot) const {
  return options_.lock_dir + "/" + slot + ".lock";
}

Result<std::vector<std::string>> Pool::Slots() const {
  std::string parent = Roots().front() + "/" + options_.name;
  EMBER_ASSIGN_OR_RETURN(auto entries, ListDirectory(parent));
  std::vector<std::pair<long, std::string>> numbered;
  for (auto& e : entries) {
    long n = SlotNumber(e);
    if (n >= 0) numbered.emplace_back(n, std::move(e));
  }
  std::sort(numbered.begin(), numbered.end());
  std::vector<std::string> slots;
  for (auto& [n, s] : numbered) slots.push_back(std::move(s));
  return slots;
}

Result<size_t> Pool::CountFree() const {
  EMBER_ASSIGN_OR_RETURN(auto slots, Slots());
  size_t free = 0;
  for (const auto& slot : slots) {
    auto lock = TryLock(slot);
    if (lock) {
      ++free;
    } else if (lock.error().code() != ErrorCode::kBusy) {
      return Fail(std::move(lock).error());
    }
  }
  return free;
}

Result<std::pair<std::string, SlotLock>> Pool::CreateSlot() {
  // From next_number_ up rather than from a listing of the pool: listing a cgroup directory of a
  // thousand slots (and sorting it) on every creation made a burst's claims quadratic. Fill,
  // which lists the pool anyway, moves next_number_ back to the lowest gap.
  for (long n = next_number_;; ++n) {
    std::string slot = SlotName(n);
    // Another process creating or holding this number: try the next.
    auto lock = TryLock(slot);
    if (!lock) {
      if (lock.error().code() == ErrorCode::kBusy) continue;
      return Fail(std::move(lock).error().Context("create cgroup slot"));
    }
    SlotDirs dirs = DirsOfSlot(slot);
    if (PathExists(dirs.Distinct().front())) continue;  // an existing slot, free: not ours to make
    // Recorded first, so a crash between the mkdirs below leaves a slot marked for reset.
    EMBER_TRY(WriteSlotState(LockPath(slot), kStateCreating));
    for (const std::string& dir : dirs.Distinct()) {
      EMBER_TRY(MakeCgroupDir(dir, options_.after_mkdir));
    }
    next_number_ = n + 1;
    return std::pair<std::string, SlotLock>(slot, std::move(*lock));
  }
}

Status Pool::RecoverIfStale(const std::string& slot, bool* was_stale) {
  std::string path = LockPath(slot);
  EMBER_ASSIGN_OR_RETURN(std::string state, ReadSlotState(path));
  *was_stale = state != kStateFree;
  if (!*was_stale) return Ok();
  spdlog::info("cgroup slot {}/{} was left '{}' by a process that is gone: resetting it",
               options_.name, slot, state.empty() ? "unknown" : state);
  SlotDirs dirs = DirsOfSlot(slot);
  // A crash during creation may have left some hierarchies without the directory.
  for (const std::string& dir : dirs.Distinct())
    EMBER_TRY(MakeCgroupDir(dir, options_.after_mkdir));
  EMBER_TRY_CTX(ResetSlot(dirs, hierarchy_.version, Suffix(slot), options_.release_timeout),
                "reset stale cgroup slot " + slot);
  return WriteSlotState(path, kStateFree);
}

Result<Lease> Pool::MakeLease(const std::string& slot, SlotLock lock) {
  Lease lease;
  lease.slot_ = slot;
  lease.lock_path_ = LockPath(slot);
  lease.suffix_ = Suffix(slot);
  lease.version_ = hierarchy_.version;
  lease.dirs_ = DirsOfSlot(slot);
  lease.features_ = features_;
  lease.release_timeout_ = options_.release_timeout;
  lease.lock_ = std::move(lock);
  // From here on the lease owns the lock; an error below releases the slot through ~Lease.
  EMBER_TRY(WriteSlotState(lease.lock_path_, "claimed " + std::to_string(::getpid())));
  const std::string& mem = lease.dirs_.memory;
  if (mem.empty()) {
    // No memory cgroup of its own: nothing to reset.
  } else if (lease.version_ == Version::kV1) {
    EMBER_TRY_CTX(WriteControlFile(mem + "/memory.max_usage_in_bytes", "0"), "claim " + slot);
  } else {
    int fd = ::open(mem.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return FailErrno("claim " + slot + ": open " + mem);
    lease.v2_dir_.reset(fd);
    // memory.peak resets per open file (6.12+); older kernels reject the write, and the peak
    // then covers the cgroup's whole life.
    std::string peak_path = mem + "/memory.peak";
    int peak = ::open(peak_path.c_str(), O_RDWR | O_CLOEXEC);
    if (peak >= 0) {
      (void)!::write(peak, "reset", 5);
    } else {
      peak = ::open(peak_path.c_str(), O_RDONLY | O_CLOEXEC);  // read-only before 6.12
    }
    lease.peak_fd_.reset(peak);
  }
  EMBER_ASSIGN_OR_RETURN(lease.oom_kills_at_claim_, ReadOomKills(lease.dirs_, lease.version_));
  return lease;
}

Result<std::optional<Lease>> Pool::TryClaim(const std::string& slot) {
  auto lock = TryLock(slot);
  if (!lock) {
    if (lock.error().code() == ErrorCode::kBusy || lock.error().code() == ErrorCode::kNotFound) {
      return std::optional<Lease>();
    }
    return Fail(std::move(lock).error().Context("claim cgroup slot"));
  }
  bool stale = false;
  auto recovered = RecoverIfStale(slot, &stale);
  if (!recovered) {
    // A slot that cannot be emptied (a process stuck in the kernel) is skipped, not fatal.
    spdlog::warn("cgroup pool {}: skipping slot {}: {}", options_.name, slot,
                 recovered.error().ToString());
    return std::optional<Lease>();
  }
  EMBER_ASSIGN_OR_RETURN(Lease lease, MakeLease(slot, std::move(*lock)));
  return std::optional<Lease>(std::move(lease));
}

Result<Lease> Pool::Claim(bool* created_slot) {
  if (created_slot != nullptr) *created_slot = false;
  while (!free_hint_.empty()) {
    std::string slot = std::move(free_hint_.front());
    free_hint_.pop_front();
    EMBER_ASSIGN_OR_RETURN(auto lease, TryClaim(slot));
    if (lease) return std::move(*lease);
  }
  // A daemon's pool (exclusive) has its free slots in the hint, put there by Fill, so a scan of
  // every slot (a lock attempt each: quadratic over a burst) would find at most a slot released
  // since, which the next Fill hints anyway.
  if (!options_.exclusive) {
    EMBER_ASSIGN_OR_RETURN(auto slots, Slots());
    for (const std::string& slot : slots) {
      EMBER_ASSIGN_OR_RETURN(auto lease, TryClaim(slot));
      if (lease) return std::move(*lease);
    }
  }
  spdlog::debug("cgroup pool {} was empty: creating a slot on the hot path", options_.name);
  EMBER_ASSIGN_OR_RETURN(auto created, CreateSlot());
  if (created_slot != nullptr) *created_slot = true;
  return MakeLease(created.first, std::move(created.second));
}

Result<size_t> Pool::Fill() {
  EMBER_ASSIGN_OR_RETURN(auto slots, Slots());
  size_t free = 0;
  std::deque<std::string> hint;
  // The lowest slot number free after this pass, where CreateSlot starts: the first gap in the
  // (sorted) listing, or a slot removed below if lower, so that the next burst makes the same
  // slots again and finds their state records.
  next_number_ = 0;
  for (const std::string& slot : slots) {
    if (SlotNumber(slot) == next_number_) ++next_number_;
    auto lock = TryLock(slot);
    if (!lock) {
      if (lock.error().code() == ErrorCode::kBusy) continue;
      return Fail(std::move(lock).error().Context("fill cgroup pool"));
    }
    bool stale = false;
    if (!RecoverIfStale(slot, &stale)) continue;
    if (free < options_.target_free) {
      ++free;
      hint.push_back(slot);
      continue;
    }
    // Free beyond the target (a burst is over): each v1 memory cgroup holds ~0.5 MiB of kernel
    // memory, so extra ones go. Their state records stay (marked free): the next burst makes the
    // same slots again, and creating a file on ext4 right after deleting many cost ~0.2 ms each
    // (the allocator skips recently deleted inodes one by one), a quarter of the daemon's CPU in
    // a burst of fork boots.
    SlotDirs dirs = DirsOfSlot(slot);
    for (const std::string& dir : dirs.Distinct()) (void)RemoveCgroupDir(dir);
    next_number_ = std::min(next_number_, SlotNumber(slot));
  }
  size_t made = 0;
  for (; free + made < options_.target_free; ++made) {
    EMBER_ASSIGN_OR_RETURN(auto created, CreateSlot());
    EMBER_TRY(WriteSlotState(LockPath(created.first), kStateFree));
    hint.push_back(created.first);
  }
  free_hint_ = std::move(hint);
  return made;
}

Result<size_t> Pool::CleanupStale() {
  EMBER_ASSIGN_OR_RETURN(auto slots, Slots());
  size_t reset = 0;
  Status first_error = Ok();
  for (const std::string& slot : slots) {
    auto lock = TryLock(slot);
    if (!lock) {
      if (lock.error().code() == ErrorCode::kBusy) continue;  // a live lease
      return Fail(std::move(lock).error().Context("clean up cgroup pool"));
    }
    bool stale = false;
    auto recovered = RecoverIfStale(slot, &stale);
    if (recovered) {
      reset += stale ? 1 : 0;
    } else if (first_error) {
      first_error = Fail(std::move(recovered).error());  // keep going: reset what can be reset
    }
  }
  EMBER_TRY(first_error);
  return reset;
}

Status Pool::Destroy() {
  EMBER_ASSIGN_OR_RETURN(auto slots, Slots());
  std::string busy;
  for (const std::string& slot : slots) {
    auto lock = TryLock(slot);
    if (!lock) {
      if (lock.error().code() != ErrorCode::kBusy) return Fail(std::move(lock).error());
      busy += " " + slot;
      continue;
    }
    SlotDirs dirs = DirsOfSlot(slot);
    EMBER_TRY_CTX(EmptySlot(dirs, hierarchy_.version, Suffix(slot), options_.release_timeout),
                  "destroy cgroup pool " + options_.name);
    for (const std::string& dir : dirs.Distinct()) EMBER_TRY(RemoveCgroupDir(dir));
    ::unlink(LockPath(slot).c_str());
  }
  if (!busy.empty()) {
    return Fail(ErrorCode::kBusy,
                "destroy cgroup pool " + options_.name + ": slots in use by a live lease:" + busy);
  }
  for (const std::string& root : Roots()) {
    EMBER_TRY(RemoveCgroupDir(root + "/" + options_.name));
  }
  // The records Fill kept of slots it removed.
  EMBER_ASSIGN_OR_RETURN(auto files, ListDirectory(options_.lock_dir));
  for (const std::string& file : files) {
    constexpr std::string_view kSuffix = ".lock";
    if (file.size() > kSuffix.size() && file.ends_with(kSuffix) &&
        SlotNumber(file.substr(0, file.size() - kSuffix.size())) >= 0) {
      ::unlink((options_.lock_dir + "/" + file).c_str());
    }
  }
  return Ok();
}

}  // namespace ember::cgroup
