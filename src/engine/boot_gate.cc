#include "engine/boot_gate.h"

#include <boost/asio/post.hpp>
#include <utility>

namespace ember::engine {

namespace asio = boost::asio;

BootSlot& BootSlot::operator=(BootSlot&& other) noexcept {
  if (this != &other) {
    Release();
    gate_ = std::move(other.gate_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void BootSlot::Release() {
  if (id_ == 0) return;
  if (auto gate = gate_.lock()) gate->Release(id_);
  id_ = 0;
  gate_.reset();
}

std::shared_ptr<BootGate> BootGate::Create(asio::io_context& io, size_t limit,
                                           std::chrono::milliseconds hold_limit) {
  return std::shared_ptr<BootGate>(new BootGate(io, limit, hold_limit));
}

void BootGate::Enter(Start start) {
  // Off (the default): no slot to track, no timer per boot on the hot path.
  if (limit_ == 0) {
    start(BootSlot());
    return;
  }
  if (held_.size() < limit_ && waiting_.empty()) {
    start(Take());
    return;
  }
  waiting_.push_back(std::move(start));
}

BootSlot BootGate::Take() {
  uint64_t id = next_id_++;
  auto timer = std::make_unique<asio::steady_timer>(io_, hold_limit_);
  std::weak_ptr<BootGate> weak = weak_from_this();
  timer->async_wait([weak, id](const boost::system::error_code& ec) {
    if (ec) return;  // released in time: the timer was destroyed with its slot
    if (auto gate = weak.lock(); gate && gate->held_.count(id) > 0) {
      ++gate->overstayed_;
      gate->Release(id);
    }
  });
  held_.emplace(id, std::move(timer));
  return BootSlot(weak, id);
}

void BootGate::Release(uint64_t id) {
  if (held_.erase(id) == 0) return;  // already taken back by its hold limit
  StartWaiting();
}

void BootGate::StartWaiting() {
  // Posted, never called here: Release runs inside whatever dropped the slot (a destructor, a
  // scheduler callback), which must not see another boot start underneath it.
  while (!waiting_.empty() && held_.size() < limit_) {
    Start start = std::move(waiting_.front());
    waiting_.pop_front();
    asio::post(io_, [slot = std::make_shared<BootSlot>(Take()), start = std::move(start)] {
      start(std::move(*slot));
    });
  }
}

}  // namespace ember::engine
