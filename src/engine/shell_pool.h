// Restore shells kept parked per function (launcher.h RestoreShell): the bookkeeping of which
// function's shells are wanted, how many (an adaptive sandbox::PoolTarget per function: a take
// that finds none doubles it, idle periods halve it), and at most one refill at a time per
// function. Building and destroying shells is the caller's (both block: on boot threads), so
// every method that lets go of shells returns them instead.
//
// Thread-safe: the io thread enables and disables functions and reads sizes, boot threads take,
// refill and put. A template over the shell type so that tests drive it with plain values.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/pool_target.h"

namespace ember::engine {

struct ShellPoolOptions {
  size_t min_ready = 1;   // per function with a snapshot; 0 = shells only after a miss
  size_t max_ready = 16;  // per function, after bursts
  std::chrono::steady_clock::duration idle_period = std::chrono::seconds(30);
};

struct ShellPoolStats {
  size_t ready = 0;
  size_t target = 0;
  size_t misses = 0;  // restores that found no shell ready
};

template <typename Shell>
class ShellPool {
 public:
  using Clock = sandbox::PoolTarget::Clock;

  explicit ShellPool(ShellPoolOptions options) : options_(options) {}

  // Keeps shells for `function` at `version` from now on; returns the shells of any other.
  std::vector<Shell> Enable(const std::string& function, const std::string& version,
                            Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(function);
    if (it != entries_.end() && it->second.version == version) return {};
    std::vector<Shell> stale = it == entries_.end() ? std::vector<Shell>{} : Drain(it->second);
    entries_.insert_or_assign(function, Entry{version, {}, MakeTarget(now), false, 0});
    return stale;
  }

  // Stops keeping shells for `function`; returns its parked ones.
  std::vector<Shell> Disable(const std::string& function) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(function);
    if (it == entries_.end()) return {};
    std::vector<Shell> stale = Drain(it->second);
    entries_.erase(it);
    return stale;
  }

  std::vector<Shell> DisableAll() {
    std::lock_guard lock(mutex_);
    std::vector<Shell> stale;
    for (auto& [name, entry] : entries_) {
      for (auto& shell : Drain(entry)) stale.push_back(std::move(shell));
    }
    entries_.clear();
    return stale;
  }

  std::optional<Shell> Take(const std::string& function, const std::string& version,
                            Clock::time_point now) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(function, version);
    if (entry == nullptr) return std::nullopt;
    bool miss = entry->ready.empty();
    entry->target.OnTake(now, miss);
    if (miss) {
      ++entry->misses;
      return std::nullopt;
    }
    Shell shell = std::move(entry->ready.front());
    entry->ready.pop_front();
    return shell;
  }

  // Whether the caller should start a refill of `function`: shells are missing and no refill
  // runs. The refill then loops `while (NeedsAnother(..)) { build; Put(..); }`, or calls
  // EndRefill when a build fails.
  bool StartRefill(const std::string& function, const std::string& version) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(function, version);
    if (entry == nullptr || entry->refilling || entry->ready.size() >= entry->target.value()) {
      return false;
    }
    entry->refilling = true;
    return true;
  }

  // False ends the refill: under the same lock as Take, so a take during a refill is never lost.
  bool NeedsAnother(const std::string& function, const std::string& version) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(function, version);
    if (entry != nullptr && entry->ready.size() < entry->target.value()) return true;
    if (entry != nullptr) entry->refilling = false;
    return false;
  }

  void EndRefill(const std::string& function) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(function); it != entries_.end()) it->second.refilling = false;
  }

  // A shell a refill built; handed back when `function` moved to another version (or was
  // disabled) meanwhile.
  std::optional<Shell> Put(const std::string& function, const std::string& version, Shell shell) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(function, version);
    if (entry == nullptr) return shell;
    entry->ready.push_back(std::move(shell));
    return std::nullopt;
  }

  // Shrinks idle functions' targets; returns the shells above them, oldest first.
  std::vector<Shell> Trim(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    std::vector<Shell> surplus;
    for (auto& [name, entry] : entries_) {
      entry.target.OnTick(now);
      while (entry.ready.size() > entry.target.value()) {
        surplus.push_back(std::move(entry.ready.front()));
        entry.ready.pop_front();
      }
    }
    return surplus;
  }

  std::optional<ShellPoolStats> Stats(const std::string& function) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(function);
    if (it == entries_.end()) return std::nullopt;
    return ShellPoolStats{it->second.ready.size(), it->second.target.value(), it->second.misses};
  }

 private:
  struct Entry {
    std::string version;
    std::deque<Shell> ready;
    sandbox::PoolTarget target;
    bool refilling = false;
    size_t misses = 0;
  };

  sandbox::PoolTarget MakeTarget(Clock::time_point now) const {
    return sandbox::PoolTarget(options_.min_ready, options_.max_ready, options_.idle_period, now);
  }
  Entry* Find(const std::string& function, const std::string& version) {
    auto it = entries_.find(function);
    return it == entries_.end() || it->second.version != version ? nullptr : &it->second;
  }
  static std::vector<Shell> Drain(Entry& entry) {
    std::vector<Shell> drained;
    for (auto& shell : entry.ready) drained.push_back(std::move(shell));
    entry.ready.clear();
    return drained;
  }

  ShellPoolOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by function
};

}  // namespace ember::engine
