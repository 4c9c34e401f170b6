// How many ready objects a pre-creating pool keeps, adapted to demand: a pool starts at
// min_ready; a take that found nothing ready (a miss) doubles the target, up to max_ready, since
// a miss means a burst outran the pool; an idle period (no take at all) halves it, down to
// min_ready, since every ready object holds kernel memory that nobody is using. The idle clock
// restarts at every take and at every shrink, so a long quiet spell shrinks the target one
// halving per period rather than all at once.
//
// Pure: the caller passes the time in, so tests drive it without sleeping. Not thread-safe; the
// pool calls it under its own lock.
#pragma once

#include <chrono>
#include <cstddef>

namespace ember::sandbox {

class PoolTarget {
 public:
  using Clock = std::chrono::steady_clock;

  // Expects min_ready <= max_ready (the pool validates its options first).
  PoolTarget(size_t min_ready, size_t max_ready, Clock::duration idle_period,
             Clock::time_point now);

  size_t value() const { return target_; }

  // A take happened; `miss` when it found nothing ready.
  void OnTake(Clock::time_point now, bool miss);
  // Shrinks the target for every idle period that has passed. Returns whether it changed.
  bool OnTick(Clock::time_point now);
  // When OnTick would next shrink the target; Clock::time_point::max() when the target is
  // already at min_ready (nothing to wait for).
  Clock::time_point NextShrinkAt() const;

 private:
  size_t min_ready_;
  size_t max_ready_;
  Clock::duration idle_period_;
  Clock::time_point idle_since_;
  size_t target_;
};

}  // namespace ember::sandbox
