// The process runtime: any program, started once at init as `/bin/sh -c <handler>` in the code
// directory, speaking a line protocol on its stdin/stdout (docs/protocol.md):
//   agent -> process: {"request_id":"..","event":<event>,"context":{...}}\n
//   process -> agent: {"result":<json>}\n   or   {"error":{"type":"..","message":".."}}\n
// One request at a time, even with concurrency > 1. When the process exits the invocation fails
// with "ProcessExited" and the runtime is no longer usable (the agent exits, the daemon replaces
// the instance).
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "agent/process_spawn.h"
#include "agent/runtime.h"

namespace ember::agent {

// Reads newline-terminated lines from a pipe, holding at most one line (<= max_line bytes) plus
// one read's worth of bytes.
class LineReader {
 public:
  enum class Status { kLine, kEof, kTooLong, kError };
  explicit LineReader(size_t max_line) : max_line_(max_line) {}
  // Fills *line (without the '\n'). kTooLong: the line was longer than max_line; its remainder
  // has been read and dropped, so the next call starts at the next line.
  Status ReadLine(int fd, std::string* line);
  // Bytes read past the last returned line (output the process wrote unasked).
  size_t pending() const { return buffer_.size(); }
  void DropPending() { buffer_.clear(); }

 private:
  size_t max_line_;
  std::string buffer_;
};

// The request line for one invocation (no newline inside: the event's own line breaks, which
// valid JSON only has between tokens, become spaces).
std::string MakeRequestLine(const InvokeRequest& request, std::string_view function_name,
                            uint64_t memory_limit_bytes);
// Interprets one response line.
InvokeOutcome ParseResponseLine(std::string_view line);

class ProcessRuntime : public Runtime {
 public:
  InitOutcome Init(const InitRequest& init) override;
  InvokeOutcome Invoke(const InvokeRequest& request) override;
  bool Usable() const override { return !exited_.load(); }
  std::string ForkRefusal() override {
    return "the process runtime runs its command in a separate process, which a fork of the "
           "agent would not copy";
  }

 private:
  // Reaps the child after its stdout closed or its stdin broke; the error for the caller.
  ErrorInfo ChildGone(std::string_view how);

  std::string function_name_;
  uint64_t memory_limit_bytes_ = 0;
  std::mutex mutex_;  // one request on the pipes at a time
  HandlerProcess process_;
  LineReader reader_{kMaxPayload + 64};
  std::atomic<bool> exited_{false};
  ErrorInfo exit_error_;  // repeated to every request after the process is gone
};

}  // namespace ember::agent
