#include "sandbox/pool_target.h"

#include <algorithm>

namespace ember::sandbox {

PoolTarget::PoolTarget(size_t min_ready, size_t max_ready, Clock::duration idle_period,
                       Clock::time_point now)
    : min_ready_(min_ready),
      max_ready_(std::max(min_ready, max_ready)),
      idle_period_(idle_period),
      idle_since_(now),
      target_(min_ready) {}

void PoolTarget::OnTake(Clock::time_point now, bool miss) {
  idle_since_ = now;
  // From a target of 0 (min_ready 0), doubling alone would never start.
  if (miss) target_ = std::min(max_ready_, std::max<size_t>(1, target_ * 2));
}

bool PoolTarget::OnTick(Clock::time_point now) {
  const size_t before = target_;
  while (target_ > min_ready_ && now - idle_since_ >= idle_period_) {
    target_ = std::max(min_ready_, target_ / 2);
    idle_since_ += idle_period_;
  }
  return target_ != before;
}

PoolTarget::Clock::time_point PoolTarget::NextShrinkAt() const {
  if (target_ <= min_ready_) return Clock::time_point::max();
  return idle_since_ + idle_period_;
}

}  // namespace ember::sandbox
