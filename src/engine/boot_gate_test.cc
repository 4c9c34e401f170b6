#include "engine/boot_gate.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace ember::engine {
namespace {

using std::chrono::milliseconds;

class BootGateTest : public ::testing::Test {
 protected:
  // Enters a boot that records its start and keeps its slot in `slots_[i]`.
  void Enter(const std::shared_ptr<BootGate>& gate, int i) {
    gate->Enter([this, i](BootSlot slot) {
      started_.push_back(i);
      slots_[i] = std::move(slot);
    });
  }
  void Drain() {
    io_.restart();
    io_.poll();
  }

  boost::asio::io_context io_;
  std::vector<int> started_;
  std::map<int, BootSlot> slots_;
};

TEST_F(BootGateTest, StartsUpToTheLimitThenInArrivalOrder) {
  auto gate = BootGate::Create(io_, 2, milliseconds(60000));
  for (int i = 0; i < 5; ++i) Enter(gate, i);
  Drain();
  EXPECT_EQ(started_, (std::vector<int>{0, 1}));
  EXPECT_EQ(gate->in_progress(), 2U);
  EXPECT_EQ(gate->waiting(), 3U);

  slots_[1].Release();
  Drain();
  EXPECT_EQ(started_, (std::vector<int>{0, 1, 2}));
  slots_[0] = BootSlot();  // dropping a slot releases it too
  slots_[2].Release();
  Drain();
  EXPECT_EQ(started_, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(gate->waiting(), 0U);
  EXPECT_EQ(gate->in_progress(), 2U);
}

TEST_F(BootGateTest, ReleasingTwiceFreesOneSlot) {
  auto gate = BootGate::Create(io_, 1, milliseconds(60000));
  for (int i = 0; i < 3; ++i) Enter(gate, i);
  Drain();
  slots_[0].Release();
  slots_[0].Release();
  Drain();
  EXPECT_EQ(started_, (std::vector<int>{0, 1}));
  EXPECT_EQ(gate->in_progress(), 1U);
}

TEST_F(BootGateTest, NoLimitStartsEverythingAtOnce) {
  auto gate = BootGate::Create(io_, 0, milliseconds(60000));
  for (int i = 0; i < 50; ++i) Enter(gate, i);
  EXPECT_EQ(started_.size(), 50U);
  EXPECT_EQ(gate->waiting(), 0U);
}

TEST_F(BootGateTest, ASlotHeldPastTheHoldLimitStopsCounting) {
  auto gate = BootGate::Create(io_, 1, milliseconds(20));
  Enter(gate, 0);
  Enter(gate, 1);
  EXPECT_EQ(started_, (std::vector<int>{0}));
  // Boot 0 never releases its slot: the hold limit lets boot 1 start anyway.
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  ASSERT_EQ(started_, (std::vector<int>{0, 1}));
  EXPECT_GE(gate->overstayed(), 1U);
  // Its late release neither frees a second slot nor crashes.
  slots_[0].Release();
  EXPECT_LE(gate->in_progress(), 1U);
}

TEST_F(BootGateTest, SlotsOutliveTheirGate) {
  auto gate = BootGate::Create(io_, 1, milliseconds(60000));
  Enter(gate, 0);
  gate.reset();
  slots_[0].Release();  // the gate is gone: nothing to give back, nothing to crash
  EXPECT_FALSE(slots_[0].held());
}

}  // namespace
}  // namespace ember::engine
