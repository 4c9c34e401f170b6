// Function logs: what each instance writes to stdout and stderr, kept per instance on the host,
// size-capped and rotated so that a function printing without end can neither fill the disk nor
// block (the sink only appends to a local file and never waits for a reader).
//
//   <logs_dir>/<function>/<instance>.log     the current part, at most max_bytes
//   <logs_dir>/<function>/<instance>.log.1   the previous part, at most max_bytes
//
// so an instance never holds more than 2 x max_bytes however much it prints. `logs_dir` is
// normally <data_dir>/logs.
//
// Reading (`ember logs`, `ember logs -f`) goes through ReadLog with a cursor: an opaque string
// that records, per instance, which file and where in it the reader stopped. A follower
// that passes back the cursor it got receives only output written since, whether or not the files
// rotated in between; if they rotated twice (more than max_bytes written between two polls) the
// output in between is gone and the read says so (`skipped`). Cursors use only URL-safe characters
// (A-Z a-z 0-9 . _ - ~). The file identity is its inode number and birth time: inode numbers
// alone are reused at once.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::engine {

inline constexpr uint64_t kDefaultMaxLogBytes = 1 << 20;
inline constexpr size_t kDefaultKeptLogInstances = 20;

// Instance ids name files: [A-Za-z0-9._-]{1,128}, neither "." nor "..".
Status ValidateInstanceId(std::string_view instance);
// <logs_dir>/<function>/<instance>.log (function and instance are not validated here).
std::string InstanceLogPath(const std::string& logs_dir, std::string_view function,
                            std::string_view instance);

// The writing end for one instance. Not thread-safe: one owner writes (the daemon's reader of the
// instance's output).
class LogSink {
 public:
  // Opens (appending to) `path`, creating its directory. `max_bytes` is the cap of each part.
  static Result<LogSink> Open(const std::string& path, uint64_t max_bytes = kDefaultMaxLogBytes);

  LogSink() = default;
  LogSink(LogSink&&) noexcept = default;
  LogSink& operator=(LogSink&&) noexcept = default;

  // Appends `data`, first rotating .log to .log.1 if the current part would pass max_bytes. Of a
  // single write larger than max_bytes only the last max_bytes are kept (counted in dropped()).
  Status Write(std::string_view data);

  const std::string& path() const { return path_; }
  uint64_t dropped() const { return dropped_; }  // bytes thrown away by oversized writes
  bool is_open() const { return fd_.valid(); }

 private:
  Status Rotate();

  std::string path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  uint64_t max_bytes_ = kDefaultMaxLogBytes;
  uint64_t dropped_ = 0;
};

struct LogReadOptions {
  std::string instance;          // "" = every instance of the function
  std::string cursor;            // from the previous LogRead; "" = a first read
  uint64_t max_bytes = 1 << 20;  // at most this much text per call (then `more` is set)
  uint64_t tail_bytes = 0;       // first read only: start this many bytes before each end; 0 = all
};

struct LogChunk {
  std::string instance;
  std::string text;  // raw output bytes (not necessarily UTF-8 or whole lines)
};

struct LogRead {
  // Per instance, oldest instance first (newest last; age = last write). Instances with nothing
  // new are left out.
  std::vector<LogChunk> chunks;
  std::string cursor;    // pass back for the next read; never empty
  bool more = false;     // max_bytes cut this read short: read again at once for the rest
  bool skipped = false;  // some output rotated away before this reader got to it
};

// Reads the logs of `function` (an empty result if it has none yet).
Result<LogRead> ReadLog(const std::string& logs_dir, std::string_view function,
                        const LogReadOptions& options);

// The instances that have logs, oldest first (by last write).
Result<std::vector<std::string>> ListLogInstances(const std::string& logs_dir,
                                                  std::string_view function);

// Removes the logs of all but the newest `keep_instances` instances of `function`; instances in
// `live` (still running: their sinks are open) are never removed and do not count.
Status PruneLogs(const std::string& logs_dir, std::string_view function,
                 size_t keep_instances = kDefaultKeptLogInstances,
                 const std::set<std::string>& live = {});

// Removes every log of `function` (when the function is removed).
Status RemoveFunctionLogs(const std::string& logs_dir, std::string_view function);

}  // namespace ember::engine
