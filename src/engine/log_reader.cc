// ReadLog: the reading side of log_sink.h. A cursor is "v1" followed by "~INSTANCE.FILE.OFFSET" for
// each instance read so far: the file the reader stopped in and the offset in it. FILE identifies
// a file across the rename that rotates .log to .log.1: a digest of its inode number and birth
// time, because inode numbers alone are reused at once (a deleted .log.1's number is often the
// next .log's) and a reader two rotations behind would continue at a wrong place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <charconv>
#include <map>

#include "base/fs.h"
#include "engine/log_sink.h"

namespace ember::engine {
namespace {

struct Position {
  uint64_t file = 0;
  uint64_t offset = 0;
};
using Cursor = std::map<std::string, Position>;

Error BadCursor(std::string_view text) {
  return Error(ErrorCode::kInvalidArgument,
               "invalid log cursor '" + std::string(text.substr(0, 200)) +
                   "': pass back the cursor of the previous read, or none");
}

bool ParseNumber(std::string_view text, uint64_t* value) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

Result<Cursor> ParseCursor(std::string_view text) {
  Cursor cursor;
  if (!text.starts_with("v1")) return Fail(BadCursor(text));
  std::string_view rest = text.substr(2);
  while (!rest.empty()) {
    if (rest.front() != '~') return Fail(BadCursor(text));
    rest.remove_prefix(1);
    std::string_view record = rest.substr(0, rest.find('~'));
    rest.remove_prefix(record.size());
    size_t second = record.rfind('.');
    size_t first = second == std::string_view::npos || second == 0 ? std::string_view::npos
                                                                   : record.rfind('.', second - 1);
    if (first == std::string_view::npos) return Fail(BadCursor(text));
    std::string instance(record.substr(0, first));
    Position position;
    if (!ValidateInstanceId(instance) ||
        !ParseNumber(record.substr(first + 1, second - first - 1), &position.file) ||
        !ParseNumber(record.substr(second + 1), &position.offset)) {
      return Fail(BadCursor(text));
    }
    cursor[instance] = position;
  }
  return cursor;
}

std::string FormatCursor(const Cursor& cursor) {
  std::string text = "v1";
  for (const auto& [instance, position] : cursor) {
    text += "~" + instance + "." + std::to_string(position.file) + "." +
            std::to_string(position.offset);
  }
  return text;
}

// One part of an instance's log, as it was when opened: bytes past `size` are for the next read.
struct Part {
  UniqueFd fd;
  uint64_t file = 0;  // FileIdentity
  uint64_t size = 0;
};

// Inode and birth time (where the filesystem records it: ext4, xfs, btrfs, tmpfs do), digested.
Result<uint64_t> FileIdentity(int dirfd, const char* path, int flags, uint64_t* size) {
  struct statx stx {};
  if (::statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME | STATX_SIZE,
              &stx) != 0) {
    return FailErrno("statx");
  }
  uint64_t material[3] = {stx.stx_ino, 0, 0};
  if ((stx.stx_mask & STATX_BTIME) != 0) {
    material[1] = static_cast<uint64_t>(stx.stx_btime.tv_sec);
    material[2] = stx.stx_btime.tv_nsec;
  }
  if (size != nullptr) *size = stx.stx_size;
  return XXH64(material, sizeof material, 0);
}

Status OpenPart(const std::string& path, Part* part) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Ok();
    return FailErrno("open " + path);
  }
  part->fd.reset(fd);
  auto file = FileIdentity(fd, "", AT_EMPTY_PATH, &part->size);
  if (!file) return Fail(std::move(file).error().Context(path));
  part->file = *file;
  return Ok();
}

struct Parts {
  Part previous;  // .log.1
  Part current;   // .log
};

// Opens both parts as one consistent pair: a rotation between the two opens would pair the wrong
// files, so .log is checked again afterwards.
Result<Parts> OpenParts(const std::string& log_path) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    Parts parts;
    EMBER_TRY(OpenPart(log_path, &parts.current));
    EMBER_TRY(OpenPart(log_path + ".1", &parts.previous));
    auto now = FileIdentity(AT_FDCWD, log_path.c_str(), 0, nullptr);
    bool current_unchanged =
        now ? parts.current.fd.valid() && *now == parts.current.file : !parts.current.fd.valid();
    bool distinct = !parts.previous.fd.valid() || !parts.current.fd.valid() ||
                    parts.previous.file != parts.current.file;
    if (current_unchanged && distinct) return parts;
  }
  return Fail(ErrorCode::kBusy, log_path + " rotates faster than it can be read; try again");
}

// Reads one instance's new output into `chunk`, within `*budget`.
class InstanceReader {
 public:
  InstanceReader(Parts& parts, uint64_t* budget, std::string* text)
      : parts_(parts), budget_(budget), text_(text) {}

  // Reads from `offset` in `part` to its end (or the budget). False when the budget ran out.
  Result<bool> ReadFrom(Part& part, uint64_t offset) {
    stop_ = {part.file, offset};
    while (offset < part.size) {
      if (*budget_ == 0) return false;
      uint64_t want = std::min<uint64_t>({part.size - offset, *budget_, 1 << 20});
      size_t old = text_->size();
      text_->resize(old + want);
      ssize_t n = ::pread(part.fd.get(), text_->data() + old, want, static_cast<off_t>(offset));
      if (n < 0) {
        text_->resize(old);
        if (errno == EINTR) continue;
        return FailErrno("read log");
      }
      text_->resize(old + static_cast<size_t>(n));
      if (n == 0) break;  // truncated under us; nothing more to read here
      offset += static_cast<uint64_t>(n);
      *budget_ -= static_cast<uint64_t>(n);
      stop_.offset = offset;
    }
    return true;
  }

  // Reads `previous` from `offset`, then all of `current`.
  Result<bool> ReadBoth(uint64_t offset) {
    if (parts_.previous.fd.valid()) {
      EMBER_ASSIGN_OR_RETURN(bool done, ReadFrom(parts_.previous, offset));
      if (!done) return false;
      offset = 0;
    }
    if (parts_.current.fd.valid()) return ReadFrom(parts_.current, offset);
    return true;
  }

  const Position& stop() const { return stop_; }

 private:
  Parts& parts_;
  uint64_t* budget_;
  std::string* text_;
  Position stop_;
};

}  // namespace

Result<LogRead> ReadLog(const std::string& logs_dir, std::string_view function,
                        const LogReadOptions& options) {
  EMBER_ASSIGN_OR_RETURN(auto all, ListLogInstances(logs_dir, function));
  std::vector<std::string> instances;
  if (options.instance.empty()) {
    instances = std::move(all);
  } else {
    EMBER_TRY(ValidateInstanceId(options.instance));
    instances.push_back(options.instance);
  }
  bool first_read = options.cursor.empty();
  Cursor old_cursor;
  if (!first_read) {
    EMBER_ASSIGN_OR_RETURN(old_cursor, ParseCursor(options.cursor));
  }

  LogRead result;
  Cursor new_cursor;
  uint64_t budget = options.max_bytes;
  for (const auto& instance : instances) {
    auto known = old_cursor.find(instance);
    if (budget == 0) {
      // Not read this time: keep its place for the next call.
      if (known != old_cursor.end()) new_cursor[instance] = known->second;
      result.more = true;
      continue;
    }
    EMBER_ASSIGN_OR_RETURN(auto parts, OpenParts(InstanceLogPath(logs_dir, function, instance)));
    if (!parts.current.fd.valid() && !parts.previous.fd.valid()) continue;
    LogChunk chunk{instance, ""};
    InstanceReader reader(parts, &budget, &chunk.text);
    bool done = true;
    if (known != old_cursor.end()) {
      const Position& at = known->second;
      if (parts.current.fd.valid() && at.file == parts.current.file &&
          at.offset <= parts.current.size) {
        EMBER_ASSIGN_OR_RETURN(done, reader.ReadFrom(parts.current, at.offset));
      } else if (parts.previous.fd.valid() && at.file == parts.previous.file &&
                 at.offset <= parts.previous.size) {
        EMBER_ASSIGN_OR_RETURN(done, reader.ReadBoth(at.offset));
      } else {
        result.skipped = true;  // both parts are newer than the reader's place
        EMBER_ASSIGN_OR_RETURN(done, reader.ReadBoth(0));
      }
    } else if (first_read && options.tail_bytes > 0) {
      uint64_t tail = options.tail_bytes;
      if (!parts.previous.fd.valid() || (parts.current.fd.valid() && parts.current.size >= tail)) {
        Part& part = parts.current.fd.valid() ? parts.current : parts.previous;
        EMBER_ASSIGN_OR_RETURN(done, reader.ReadFrom(part, part.size - std::min(part.size, tail)));
      } else {
        uint64_t from_previous = tail - parts.current.size;
        EMBER_ASSIGN_OR_RETURN(done, reader.ReadBoth(parts.previous.size -
                                                     std::min(parts.previous.size, from_previous)));
      }
    } else {
      EMBER_ASSIGN_OR_RETURN(done, reader.ReadBoth(0));
    }
    if (!done) result.more = true;
    new_cursor[instance] = reader.stop();
    if (!chunk.text.empty()) result.chunks.push_back(std::move(chunk));
  }
  result.cursor = FormatCursor(new_cursor);
  return result;
}

}  // namespace ember::engine
