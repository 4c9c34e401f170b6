#include "agent/invocation_pool.h"

#include <cstdio>
#include <cstring>

namespace ember::agent {

void InvocationPool::StartThreads() {
  tried_start_ = true;
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // pthread_create reports failure as a value (std::thread would throw, e.g. at the pids limit).
  for (uint32_t i = 0; i < workers_; ++i) {
    pthread_t thread;
    int rc = ::pthread_create(&thread, &attr, &InvocationPool::ThreadMain, this);
    if (rc != 0) {
      std::fprintf(stderr,
                   "ember-agent: started %u of %u worker threads (pthread_create: %s); serving "
                   "with fewer\n",
                   started_, workers_, std::strerror(rc));
      break;
    }
    ++started_;
  }
  ::pthread_attr_destroy(&attr);
}

void InvocationPool::Submit(Frame frame) {
  if (!tried_start_) StartThreads();
  if (started_ == 0) {
    work_(frame);
    return;
  }
  std::unique_lock lock(mutex_);
  not_full_.wait(lock, [this] { return queue_.size() < workers_; });
  queue_.push_back(std::move(frame));
  lock.unlock();
  not_empty_.notify_one();
}

void* InvocationPool::ThreadMain(void* self) {
  static_cast<InvocationPool*>(self)->WorkerLoop();
  return nullptr;
}

void InvocationPool::WorkerLoop() {
  for (;;) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [this] { return !queue_.empty(); });
    Frame frame = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    work_(frame);
  }
}

}  // namespace ember::agent
