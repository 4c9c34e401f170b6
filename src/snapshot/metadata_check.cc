#include "snapshot/metadata_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "snapshot/image_header.h"

namespace ember::snapshot {
namespace {

tl::unexpected<Error> Corrupt(std::string message) {
  return Fail(ErrorCode::kCorrupt, std::move(message));
}

struct Range {
  uint64_t begin = 0, end = 0;
  bool Overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
};

class Checker {
 public:
  Checker(std::span<const uint8_t> metadata, std::span<const uint64_t> relocations,
          const FileHeader& header)
      : base_(metadata.data()), size_(metadata.size()), relocs_(relocations), header_(header) {}

  Status Run();

 private:
  template <typename T>
  const T& At(uint64_t offset) const {
    return *reinterpret_cast<const T*>(base_ + offset);
  }

  Status CheckTable() const;
  // The RelPtr at `field_at` (relative to the metadata) points at `count` elements of `elem`
  // bytes. Pointer-holding arrays are registered as such; anything else must stay clear of them.
  Status Pointer(const std::string& what, uint64_t field_at, uint64_t raw, uint64_t count,
                 uint64_t elem, uint64_t align, bool holds_pointers);
  Status String(const std::string& what, uint64_t field_at, const StringRef& s);
  Status Threads(const ProcessRecord& p);
  Status Areas(const ProcessRecord& p);
  Status Runs(const std::string& what, const AreaRecord& a, uint64_t* stored);
  Status Files(const ProcessRecord& p);

  const uint8_t* base_;
  uint64_t size_;
  std::span<const uint64_t> relocs_;
  const FileHeader& header_;
  Range holders_[4];  // process record, threads, areas, files
  size_t holder_count_ = 0;
  uint64_t pointers_seen_ = 0;
};

Status Checker::CheckTable() const {
  for (size_t i = 0; i < relocs_.size(); ++i) {
    const uint64_t at = relocs_[i];
    if (at % 8 != 0 || at > size_ - 8 || (i > 0 && at <= relocs_[i - 1])) {
      return Corrupt(fmt::format(
          "relocation {} (offset {}) is misaligned, outside the {}-byte metadata or out of order",
          i, at, size_));
    }
  }
  return Ok();
}

Status Checker::Pointer(const std::string& what, uint64_t field_at, uint64_t raw, uint64_t count,
                        uint64_t elem, uint64_t align, bool holds_pointers) {
  if (count == 0) {
    if (raw != 0) return Corrupt(what + ": non-null pointer to 0 elements");
    return Ok();
  }
  if (raw == 0) return Corrupt(fmt::format("{}: null pointer to {} elements", what, count));
  if (!std::binary_search(relocs_.begin(), relocs_.end(), field_at)) {
    return Corrupt(fmt::format("{}: pointer field at offset {} is not in the relocation table",
                               what, field_at));
  }
  ++pointers_seen_;
  // count * elem cannot overflow: counts are bounded by kLimits, elements by a few KiB.
  if (raw % align != 0 || raw >= size_ || count * elem > size_ - raw) {
    return Corrupt(fmt::format(
        "{}: {} elements of {} bytes at offset {} are misaligned or outside the {}-byte metadata",
        what, count, elem, raw, size_));
  }
  const Range range{raw, raw + count * elem};
  for (size_t i = 0; i < holder_count_; ++i) {
    if (range.Overlaps(holders_[i])) {
      return Corrupt(fmt::format("{}: bytes {}-{} overlap records that hold pointers", what,
                                 range.begin, range.end));
    }
  }
  if (holds_pointers) holders_[holder_count_++] = range;
  return Ok();
}

Status Checker::String(const std::string& what, uint64_t field_at, const StringRef& s) {
  if (s.length > kLimits.max_string_bytes) {
    return Corrupt(fmt::format("{}: a string of {} bytes (limit {})", what, s.length,
                               kLimits.max_string_bytes));
  }
  EMBER_TRY(Pointer(what, field_at, s.chars.raw, uint64_t{s.length} + 1, 1, 1, false));
  const auto* chars = reinterpret_cast<const char*>(base_ + s.chars.raw);
  if (chars[s.length] != '\0' || std::memchr(chars, '\0', s.length) != nullptr) {
    return Corrupt(what + ": the string is not exactly " + std::to_string(s.length) +
                   " bytes and a NUL");
  }
  return Ok();
}

Status Checker::Threads(const ProcessRecord& p) {
  for (uint32_t i = 0; i < p.thread_count; ++i) {
    const uint64_t at = p.threads.raw + i * sizeof(ThreadRecord);
    const auto& t = At<ThreadRecord>(at);
    const std::string what = fmt::format("thread {} (tid {})", i, t.tid);
    if ((t.flags & ~kThreadRestartSyscall) != 0) return Corrupt(what + ": unknown flags");
    if (t.xsave_size > kLimits.max_xsave_bytes) {
      return Corrupt(fmt::format("{}: xsave area of {} bytes (limit {})", what, t.xsave_size,
                                 kLimits.max_xsave_bytes));
    }
    EMBER_TRY(Pointer(what + " xsave", at + offsetof(ThreadRecord, xsave), t.xsave.raw,
                      t.xsave_size, 1, kXsaveAlign, false));
  }
  return Ok();
}

Status Checker::Runs(const std::string& what, const AreaRecord& a, uint64_t* stored) {
  const SectionEntry& pages = Section(header_, SectionKind::kPageData);
  const uint64_t area_pages = (a.end - a.start) / kPageSize;
  uint64_t next_page = 0, total = 0;
  for (uint32_t j = 0; j < a.page_run_count; ++j) {
    const auto& r = At<PageRunRecord>(a.page_runs.raw + j * sizeof(PageRunRecord));
    const uint64_t first = r.first_page, count = r.page_count, bytes = count * kPageSize;
    if (count == 0 || first < next_page || first + count > area_pages) {
      return Corrupt(fmt::format(
          "{}: page run {} (pages {}+{}) is empty, out of order or beyond the area's {} pages",
          what, j, first, count, area_pages));
    }
    if (r.file_offset % kPageSize != 0 || r.file_offset < pages.offset ||
        r.file_offset - pages.offset > pages.size ||
        bytes > pages.size - (r.file_offset - pages.offset)) {
      return Corrupt(
          fmt::format("{}: page run {} at file offset {} is not page aligned inside "
                      "the page data section",
                      what, j, r.file_offset));
    }
    next_page = first + count;
    total += count;
  }
  if (total != a.stored_pages) {
    return Corrupt(fmt::format("{}: {} stored pages in its runs, {} in the record", what, total,
                               a.stored_pages));
  }
  *stored += total;
  return Ok();
}

Status Checker::Areas(const ProcessRecord& p) {
  uint64_t prev_end = 0, runs_used = 0, stored = 0;
  for (uint32_t i = 0; i < p.area_count; ++i) {
    const uint64_t at = p.areas.raw + i * sizeof(AreaRecord);
    const auto& a = At<AreaRecord>(at);
    const std::string what = fmt::format("area {} ({:#x}-{:#x})", i, a.start, a.end);
    if (a.start >= a.end || a.start % kPageSize != 0 || a.end % kPageSize != 0 ||
        a.start < prev_end || (a.end - a.start) / kPageSize > UINT32_MAX) {
      return Corrupt(what + ": not a page-aligned range after the area before it");
    }
    prev_end = a.end;
    if (a.kind > static_cast<uint8_t>(AreaKind::kVvarVclock) || a.dontdump > 1) {
      return Corrupt(
          fmt::format("{}: kind {} / dontdump {} out of range", what, a.kind, a.dontdump));
    }
    EMBER_TRY(String(what + " path", at + offsetof(AreaRecord, path), a.path));
    // An area's runs are the next slice of the process's run array.
    if (a.page_run_count > p.page_run_count - runs_used ||
        (a.page_run_count != 0 &&
         a.page_runs.raw != p.page_runs.raw + runs_used * sizeof(PageRunRecord))) {
      return Corrupt(what + ": its page runs are not the next slice of the process's runs");
    }
    EMBER_TRY(Pointer(what + " page runs", at + offsetof(AreaRecord, page_runs), a.page_runs.raw,
                      a.page_run_count, sizeof(PageRunRecord), 8, false));
    EMBER_TRY(Runs(what, a, &stored));
    runs_used += a.page_run_count;
  }
  if (runs_used != p.page_run_count || stored != header_.counts.stored_pages) {
    return Corrupt(fmt::format("areas use {} of {} page runs and {} of {} stored pages", runs_used,
                               p.page_run_count, stored, header_.counts.stored_pages));
  }
  return Ok();
}

Status Checker::Files(const ProcessRecord& p) {
  for (uint32_t i = 0; i < p.file_count; ++i) {
    const uint64_t at = p.files.raw + i * sizeof(FileRecord);
    const auto& f = At<FileRecord>(at);
    const std::string what = fmt::format("file {} (fd {})", i, f.fd);
    if (f.kind > static_cast<uint8_t>(FileKind::kPipe) || f.cloexec > 1) {
      return Corrupt(fmt::format("{}: kind {} / cloexec {} out of range", what, f.kind, f.cloexec));
    }
    EMBER_TRY(String(what + " path", at + offsetof(FileRecord, path), f.path));
  }
  return Ok();
}

Status Checker::Run() {
  EMBER_TRY(CheckTable());
  const auto& p = At<ProcessRecord>(0);
  const ImageCounts& c = header_.counts;
  if (p.thread_count != c.threads || p.area_count != c.areas || p.page_run_count != c.page_runs ||
      p.file_count != c.files || p.itimer_count != c.itimers ||
      p.posix_timer_count != c.posix_timers) {
    return Corrupt("the process record's counts differ from the header's");
  }
  if (p.auxv_words > kLimits.max_auxv_words) {
    return Corrupt(
        fmt::format("auxv of {} words (limit {})", p.auxv_words, kLimits.max_auxv_words));
  }
  if (p.clocks.monotonic_ns > kMaxClockNs || p.clocks.boottime_ns > kMaxClockNs) {
    return Corrupt(fmt::format(
        "recorded clocks monotonic {} ns, boottime {} ns: beyond what a time namespace can show "
        "({} ns)",
        p.clocks.monotonic_ns, p.clocks.boottime_ns, kMaxClockNs));
  }
  holders_[holder_count_++] = Range{0, sizeof(ProcessRecord)};
  auto field = [](size_t offset) { return uint64_t{offset}; };
  EMBER_TRY(Pointer("threads", field(offsetof(ProcessRecord, threads)), p.threads.raw,
                    p.thread_count, sizeof(ThreadRecord), 8, true));
  EMBER_TRY(Pointer("areas", field(offsetof(ProcessRecord, areas)), p.areas.raw, p.area_count,
                    sizeof(AreaRecord), 8, true));
  EMBER_TRY(Pointer("files", field(offsetof(ProcessRecord, files)), p.files.raw, p.file_count,
                    sizeof(FileRecord), 8, true));
  EMBER_TRY(Pointer("page runs", field(offsetof(ProcessRecord, page_runs)), p.page_runs.raw,
                    p.page_run_count, sizeof(PageRunRecord), 8, false));
  EMBER_TRY(Pointer("interval timers", field(offsetof(ProcessRecord, itimers)), p.itimers.raw,
                    p.itimer_count, sizeof(IntervalTimerRecord), 8, false));
  EMBER_TRY(Pointer("POSIX timers", field(offsetof(ProcessRecord, posix_timers)),
                    p.posix_timers.raw, p.posix_timer_count, sizeof(PosixTimerRecord), 8, false));
  EMBER_TRY(
      Pointer("auxv", field(offsetof(ProcessRecord, auxv)), p.auxv.raw, p.auxv_words, 8, 8, false));
  EMBER_TRY(String("cwd", offsetof(ProcessRecord, cwd), p.cwd));
  EMBER_TRY(String("exe", offsetof(ProcessRecord, exe), p.exe));
  EMBER_TRY(Threads(p));
  EMBER_TRY(Areas(p));
  EMBER_TRY(Files(p));
  if (pointers_seen_ != relocs_.size()) {
    return Corrupt(fmt::format("the relocation table lists {} fields, the records hold {} pointers",
                               relocs_.size(), pointers_seen_));
  }
  return Ok();
}

}  // namespace

Status CheckMetadata(std::span<const uint8_t> metadata, std::span<const uint64_t> relocations,
                     const FileHeader& header) {
  if (metadata.size() < sizeof(ProcessRecord)) {
    return Corrupt("the metadata section is smaller than a process record");
  }
  return Checker(metadata, relocations, header).Run();
}

void Relocate(std::span<uint8_t> metadata, std::span<const uint64_t> relocations) {
  const auto base = reinterpret_cast<uintptr_t>(metadata.data());
  for (uint64_t at : relocations) {
    uint64_t value;
    std::memcpy(&value, metadata.data() + at, sizeof value);
    value += base;
    std::memcpy(metadata.data() + at, &value, sizeof value);
  }
}

}  // namespace ember::snapshot
