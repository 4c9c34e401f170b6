// The worker threads of an agent with concurrency > 1. They are created at the first
// invocation, not at init: an initialized agent is forked into templates later, and fork keeps
// only the calling thread, so the agent must still be single-threaded when init ends.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "agent/protocol.h"

namespace ember::agent {

class InvocationPool {
 public:
  using Work = std::function<void(const Frame&)>;
  InvocationPool(uint32_t workers, Work work) : workers_(workers), work_(std::move(work)) {}
  InvocationPool(const InvocationPool&) = delete;
  InvocationPool& operator=(const InvocationPool&) = delete;
  // The threads are detached and never joined: they may be inside a handler when the agent
  // exits, which it does with _exit.
  ~InvocationPool() = default;

  // Hands a frame to a worker. Blocks while `workers` frames already wait, so a daemon that sends
  // more than `concurrency` at once is slowed down instead of buffered without bound. If no
  // thread can be created at all, runs the work on the calling thread.
  void Submit(Frame frame);

  uint32_t running_threads() const { return started_; }

 private:
  static void* ThreadMain(void* self);
  void WorkerLoop();
  void StartThreads();

  const uint32_t workers_;
  Work work_;
  bool tried_start_ = false;
  uint32_t started_ = 0;
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Frame> queue_;
};

}  // namespace ember::agent
