#include "snapshot/state_checks.h"

#include <fmt/format.h>

#include "snapshot/format.h"

namespace ember::snapshot {
namespace {

tl::unexpected<Error> Invalid(std::string_view message) {
  return Fail(ErrorCode::kInvalidArgument, "snapshot image: " + std::string(message));
}

Status CheckPath(const std::string& path, const std::string& what) {
  if (path.size() > kLimits.max_string_bytes) {
    return Invalid(fmt::format("{}: path of {} bytes is over the limit of {}", what, path.size(),
                               kLimits.max_string_bytes));
  }
  if (path.find('\0') != std::string::npos) return Invalid(what + ": path contains a NUL byte");
  return Ok();
}

Status CheckArea(const MemoryArea& area, size_t index, uint64_t prev_end) {
  const std::string what = fmt::format("area {} ({:#x}-{:#x})", index, area.start, area.end);
  if (area.start >= area.end || area.start % kPageSize != 0 || area.end % kPageSize != 0) {
    return Invalid(what + ": not a non-empty page-aligned range");
  }
  if (area.start < prev_end) return Invalid(what + ": overlaps or precedes the area before it");
  const uint64_t page_count = (area.end - area.start) / kPageSize;
  if (page_count > UINT32_MAX) return Invalid(what + ": more than 2^32 pages");
  if (area.page_data.size() != area.pages.size() * kPageSize) {
    return Invalid(fmt::format("{}: {} stored pages but {} bytes of page data", what,
                               area.pages.size(), area.page_data.size()));
  }
  for (size_t i = 0; i < area.pages.size(); ++i) {
    if (area.pages[i] >= page_count || (i > 0 && area.pages[i] <= area.pages[i - 1])) {
      return Invalid(
          fmt::format("{}: page index {} is out of range or out of order", what, area.pages[i]));
    }
  }
  if (static_cast<uint8_t>(area.kind) > static_cast<uint8_t>(AreaKind::kVvarVclock)) {
    return Invalid(what + ": unknown kind");
  }
  return CheckPath(area.path, what);
}

}  // namespace

Status CheckStateForImage(const ProcessState& s) {
  if (s.threads.empty() || s.threads.size() > kLimits.max_threads) {
    return Invalid(
        fmt::format("{} threads (1 to {} allowed)", s.threads.size(), kLimits.max_threads));
  }
  for (const auto& t : s.threads) {
    if (t.xsave.size() > kLimits.max_xsave_bytes) {
      return Invalid(fmt::format("thread {}: xsave area of {} bytes is over the limit of {}", t.tid,
                                 t.xsave.size(), kLimits.max_xsave_bytes));
    }
  }
  if (s.areas.size() > kLimits.max_areas) {
    return Invalid(fmt::format("{} areas (limit {})", s.areas.size(), kLimits.max_areas));
  }
  uint64_t prev_end = 0;
  for (size_t i = 0; i < s.areas.size(); ++i) {
    EMBER_TRY(CheckArea(s.areas[i], i, prev_end));
    prev_end = s.areas[i].end;
  }
  if (s.files.size() > kLimits.max_files) {
    return Invalid(fmt::format("{} files (limit {})", s.files.size(), kLimits.max_files));
  }
  for (const auto& f : s.files) EMBER_TRY(CheckPath(f.path, fmt::format("fd {}", f.fd)));
  if (s.itimers.size() > kLimits.max_timers || s.posix_timers.size() > kLimits.max_timers) {
    return Invalid(fmt::format("{} interval and {} POSIX timers (limit {} each)", s.itimers.size(),
                               s.posix_timers.size(), kLimits.max_timers));
  }
  if (s.mm.auxv.size() > kLimits.max_auxv_words) {
    return Invalid(
        fmt::format("auxv of {} words (limit {})", s.mm.auxv.size(), kLimits.max_auxv_words));
  }
  if (s.working_set.size() > kLimits.max_working_set_pages) {
    return Invalid(fmt::format("working set of {} pages (limit {})", s.working_set.size(),
                               kLimits.max_working_set_pages));
  }
  for (uint64_t page : s.working_set) {
    if (page % kPageSize != 0) return Invalid(fmt::format("working set page {:#x}", page));
  }
  EMBER_TRY(CheckPath(s.cwd, "cwd"));
  return CheckPath(s.exe, "exe");
}

}  // namespace ember::snapshot
