// Admission of boots: at most `limit` boots in progress at once, the rest wait in arrival order.
//
// Without it a burst starts every boot at once (a thousand forced fork boots: a thousand
// children setting up their sandboxes side by side on two CPUs), so each boot takes as long as
// the whole burst and none is done early. With a few in progress at a time the CPUs do the same
// work in order: each boot takes about its own time, the rest wait, and the wait is reported as
// queueing (Server-Timing `queue`), not as boot time (`sandbox`, `init`).
//
// A boot holds its slot until its instance is ready (a fork-booted child reports that after the
// template's reply) or it failed. A boot that holds a slot longer than `hold_limit` (a handler
// whose at-fork hook hangs, a slow plain boot) stops counting against the limit, so it can delay
// the boots behind it but never stall them.
//
// Not thread-safe: the io thread only, like the rest of the engine's state.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>

namespace ember::engine {

class BootGate;

// A slot of the gate; gives it back when released or destroyed (move-only).
class BootSlot {
 public:
  BootSlot() = default;
  BootSlot(std::weak_ptr<BootGate> gate, uint64_t id) : gate_(std::move(gate)), id_(id) {}
  BootSlot(BootSlot&& other) noexcept
      : gate_(std::move(other.gate_)), id_(std::exchange(other.id_, 0)) {}
  BootSlot& operator=(BootSlot&& other) noexcept;
  BootSlot(const BootSlot&) = delete;
  BootSlot& operator=(const BootSlot&) = delete;
  ~BootSlot() { Release(); }

  void Release();
  bool held() const { return id_ != 0; }

 private:
  std::weak_ptr<BootGate> gate_;
  uint64_t id_ = 0;
};

class BootGate : public std::enable_shared_from_this<BootGate> {
 public:
  using Start = std::function<void(BootSlot)>;

  // limit 0: no limit (every boot starts at once with an empty slot, nothing is tracked).
  static std::shared_ptr<BootGate> Create(boost::asio::io_context& io, size_t limit,
                                          std::chrono::milliseconds hold_limit);

  // Calls `start` with a slot now if one is free and nobody waits, otherwise (posted on the io
  // thread) once one is.
  void Enter(Start start);

  size_t limit() const { return limit_; }
  size_t in_progress() const { return held_.size(); }
  size_t waiting() const { return waiting_.size(); }
  // Slots taken back because their boot held them past hold_limit.
  uint64_t overstayed() const { return overstayed_; }

 private:
  friend class BootSlot;
  BootGate(boost::asio::io_context& io, size_t limit, std::chrono::milliseconds hold_limit)
      : io_(io), limit_(limit), hold_limit_(hold_limit) {}

  BootSlot Take();
  void Release(uint64_t id);
  void StartWaiting();

  boost::asio::io_context& io_;
  size_t limit_;
  std::chrono::milliseconds hold_limit_;
  std::map<uint64_t, std::unique_ptr<boost::asio::steady_timer>> held_;  // by slot id
  std::deque<Start> waiting_;
  uint64_t next_id_ = 1;
  uint64_t overstayed_ = 0;
};

}  // namespace ember::engine
