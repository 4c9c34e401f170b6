#include "snapshot/image_layout.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "snapshot/compat.h"
#include "snapshot/state_checks.h"

namespace ember::snapshot {

std::string_view SectionName(SectionKind kind) {
  switch (kind) {
    case SectionKind::kCompat:
      return "compat";
    case SectionKind::kRelocations:
      return "relocations";
    case SectionKind::kMetadata:
      return "metadata";
    case SectionKind::kPageData:
      return "page data";
    case SectionKind::kWorkingSet:
      return "working set";
  }
  return "unknown";
}

uint64_t SectionChecksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

uint64_t HeaderChecksum(const FileHeader& header) {
  FileHeader copy = header;
  copy.header_checksum = 0;
  return XXH3_64bits(&copy, sizeof copy);
}

uint64_t PlaceSections(FileHeader* header, uint64_t relocations_bytes, uint64_t metadata_bytes,
                       uint64_t page_data_bytes, uint64_t working_set_bytes) {
  const uint64_t sizes[kSectionCount] = {sizeof(CompatRecordView), relocations_bytes,
                                         metadata_bytes, page_data_bytes, working_set_bytes};
  uint64_t at = sizeof(FileHeader);
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    const auto kind = static_cast<SectionKind>(i);
    // The metadata and the pages are mmap'ed: their file offsets must be page aligned.
    const bool mapped = kind == SectionKind::kMetadata || kind == SectionKind::kPageData;
    at = AlignUp(at, mapped ? kPageSize : 8);
    header->sections[i].kind = i;
    header->sections[i].offset = at;
    header->sections[i].size = sizes[i];
    at += sizes[i];
  }
  header->file_size = at;
  return at;
}

namespace {

tl::unexpected<Error> Invalid(std::string_view message) {
  return Fail(ErrorCode::kInvalidArgument, "snapshot image: " + std::string(message));
}

// Groups sorted page indexes into runs of consecutive indexes.
std::vector<PageRunRecord> RunsOf(const MemoryArea& area) {
  std::vector<PageRunRecord> runs;
  for (uint32_t page : area.pages) {
    if (!runs.empty() && runs.back().first_page + runs.back().page_count == page) {
      ++runs.back().page_count;
    } else {
      runs.push_back({page, 1, 0});
    }
  }
  return runs;
}

// The metadata section under construction: fixed records first, the string pool at the end.
class MetadataBuilder {
 public:
  uint64_t Reserve(uint64_t bytes, uint64_t align) {
    const uint64_t at = AlignUp(bytes_.size(), align);
    bytes_.resize(at + bytes);
    return at;
  }
  template <typename T>
  void Put(uint64_t at, const T& record) {
    std::memcpy(bytes_.data() + at, &record, sizeof record);
  }
  void PutBytes(uint64_t at, const void* data, size_t size) {
    if (size != 0) std::memcpy(bytes_.data() + at, data, size);
  }
  // The field at `field_at` holds `raw`; non-null pointers are listed for relocation.
  uint64_t Pointer(uint64_t field_at, uint64_t raw) {
    if (raw != 0) relocations_.push_back(field_at);
    return raw;
  }
  StringRef String(uint64_t field_at, const std::string& s) {
    // The pool starts with the empty string, which every empty path shares.
    const uint64_t at = s.empty() ? empty_string_ : Reserve(s.size() + 1, 1);
    PutBytes(at, s.data(), s.size());
    return StringRef{{Pointer(field_at, at)}, static_cast<uint32_t>(s.size()), 0};
  }
  void StartStringPool() { empty_string_ = Reserve(1, 1); }
  std::vector<uint8_t> TakeBytes() {
    bytes_.resize(AlignUp(bytes_.size(), 8));
    return std::move(bytes_);
  }
  std::vector<uint64_t> TakeRelocations() {
    std::sort(relocations_.begin(), relocations_.end());
    return std::move(relocations_);
  }

 private:
  std::vector<uint8_t> bytes_;
  std::vector<uint64_t> relocations_;
  uint64_t empty_string_ = 0;
};

template <typename T>
uint64_t ArrayAt(MetadataBuilder& b, size_t count, uint64_t align = 8) {
  return count == 0 ? 0 : b.Reserve(count * sizeof(T), align);
}

// Where each fixed part of the metadata starts (0 for an empty array).
struct Offsets {
  uint64_t process, threads, areas, runs, files, itimers, posix_timers, auxv;
  std::vector<uint64_t> xsave;
};

Offsets ReserveFixedParts(MetadataBuilder& b, const ProcessState& s, uint64_t run_count) {
  Offsets o;
  o.process = b.Reserve(sizeof(ProcessRecord), 8);
  o.threads = ArrayAt<ThreadRecord>(b, s.threads.size());
  o.areas = ArrayAt<AreaRecord>(b, s.areas.size());
  o.runs = ArrayAt<PageRunRecord>(b, run_count);
  o.files = ArrayAt<FileRecord>(b, s.files.size());
  o.itimers = ArrayAt<IntervalTimerRecord>(b, s.itimers.size());
  o.posix_timers = ArrayAt<PosixTimerRecord>(b, s.posix_timers.size());
  o.auxv = ArrayAt<uint64_t>(b, s.mm.auxv.size());
  for (const auto& t : s.threads)
    o.xsave.push_back(ArrayAt<uint8_t>(b, t.xsave.size(), kXsaveAlign));
  b.StartStringPool();
  return o;
}

void FillThreads(MetadataBuilder& b, const ProcessState& s, const Offsets& o) {
  for (size_t i = 0; i < s.threads.size(); ++i) {
    const ThreadState& t = s.threads[i];
    const uint64_t at = o.threads + i * sizeof(ThreadRecord);
    ThreadRecord r{};
    r.tid = t.tid;
    r.flags = t.restart_syscall ? kThreadRestartSyscall : 0;
    r.regs = t.regs;
    r.xsave.raw = b.Pointer(at + offsetof(ThreadRecord, xsave), o.xsave[i]);
    r.xsave_size = static_cast<uint32_t>(t.xsave.size());
    r.altstack_flags = t.altstack_flags;
    r.fs_base = t.fs_base;
    r.gs_base = t.gs_base;
    r.sigmask = t.sigmask;
    r.altstack_sp = t.altstack_sp;
    r.altstack_size = t.altstack_size;
    r.clear_child_tid = t.clear_child_tid;
    r.robust_list = t.robust_list;
    r.robust_list_len = t.robust_list_len;
    r.rseq_addr = t.rseq_addr;
    r.rseq_len = t.rseq_len;
    r.rseq_sig = t.rseq_sig;
    b.Put(at, r);
    b.PutBytes(o.xsave[i], t.xsave.data(), t.xsave.size());
  }
}

// Page data goes area by area, each area's runs back to back from `*page_at`.
void FillAreas(MetadataBuilder& b, const ProcessState& s, const Offsets& o,
               const std::vector<std::vector<PageRunRecord>>& runs, uint64_t* page_at,
               ImageLayout* out) {
  uint64_t run_index = 0;
  for (size_t i = 0; i < s.areas.size(); ++i) {
    const MemoryArea& a = s.areas[i];
    const uint64_t at = o.areas + i * sizeof(AreaRecord);
    AreaRecord r{};
    r.start = a.start;
    r.end = a.end;
    r.prot = a.prot;
    r.flags = a.flags;
    r.kind = static_cast<uint8_t>(a.kind);
    r.dontdump = a.dontdump ? 1 : 0;
    r.page_run_count = static_cast<uint32_t>(runs[i].size());
    r.path = b.String(at + offsetof(AreaRecord, path), a.path);
    r.file_offset = a.file_offset;
    r.dev = a.dev;
    r.inode = a.inode;
    const uint64_t first_run = runs[i].empty() ? 0 : o.runs + run_index * sizeof(PageRunRecord);
    r.page_runs.raw = b.Pointer(at + offsetof(AreaRecord, page_runs), first_run);
    r.stored_pages = a.pages.size();
    r.pages_checksum = SectionChecksum(a.page_data.data(), a.page_data.size());
    b.Put(at, r);
    out->area_page_offsets.push_back(a.pages.empty() ? 0 : *page_at);
    for (PageRunRecord run : runs[i]) {
      run.file_offset = *page_at;
      *page_at += uint64_t{run.page_count} * kPageSize;
      b.Put(o.runs + run_index++ * sizeof(PageRunRecord), run);
    }
  }
}

void FillFilesAndTimers(MetadataBuilder& b, const ProcessState& s, const Offsets& o) {
  for (size_t i = 0; i < s.files.size(); ++i) {
    const FileDescriptor& f = s.files[i];
    const uint64_t at = o.files + i * sizeof(FileRecord);
    FileRecord r{};
    r.fd = f.fd;
    r.kind = static_cast<uint8_t>(f.kind);
    r.cloexec = f.cloexec ? 1 : 0;
    r.open_flags = f.open_flags;
    r.offset = f.offset;
    r.dev = f.dev;
    r.inode = f.inode;
    r.path = b.String(at + offsetof(FileRecord, path), f.path);
    b.Put(at, r);
  }
  for (size_t i = 0; i < s.itimers.size(); ++i) {
    const IntervalTimer& t = s.itimers[i];
    b.Put(o.itimers + i * sizeof(IntervalTimerRecord),
          IntervalTimerRecord{t.which, 0, t.interval_ns, t.value_ns});
  }
  for (size_t i = 0; i < s.posix_timers.size(); ++i) {
    const PosixTimer& t = s.posix_timers[i];
    b.Put(o.posix_timers + i * sizeof(PosixTimerRecord),
          PosixTimerRecord{t.id, t.clock_id, t.signal, t.notify, t.sigev_value, t.interval_ns,
                           t.value_ns, t.notify_tid, 0});
  }
  b.PutBytes(o.auxv, s.mm.auxv.data(), s.mm.auxv.size() * sizeof(uint64_t));
}

void FillProcess(MetadataBuilder& b, const ProcessState& s, const Offsets& o, uint64_t run_count) {
  ProcessRecord r{};
  const uint64_t at = o.process;
  r.pid = s.pid;
  r.umask = s.umask;
  r.pending_signals = s.pending_signals;
  r.threads.raw = b.Pointer(at + offsetof(ProcessRecord, threads), o.threads);
  r.areas.raw = b.Pointer(at + offsetof(ProcessRecord, areas), o.areas);
  r.page_runs.raw = b.Pointer(at + offsetof(ProcessRecord, page_runs), o.runs);
  r.files.raw = b.Pointer(at + offsetof(ProcessRecord, files), o.files);
  r.itimers.raw = b.Pointer(at + offsetof(ProcessRecord, itimers), o.itimers);
  r.posix_timers.raw = b.Pointer(at + offsetof(ProcessRecord, posix_timers), o.posix_timers);
  r.auxv.raw = b.Pointer(at + offsetof(ProcessRecord, auxv), o.auxv);
  r.thread_count = static_cast<uint32_t>(s.threads.size());
  r.area_count = static_cast<uint32_t>(s.areas.size());
  r.page_run_count = static_cast<uint32_t>(run_count);
  r.file_count = static_cast<uint32_t>(s.files.size());
  r.itimer_count = static_cast<uint32_t>(s.itimers.size());
  r.posix_timer_count = static_cast<uint32_t>(s.posix_timers.size());
  r.auxv_words = static_cast<uint32_t>(s.mm.auxv.size());
  r.cwd = b.String(at + offsetof(ProcessRecord, cwd), s.cwd);
  r.exe = b.String(at + offsetof(ProcessRecord, exe), s.exe);
  const MmBounds& m = s.mm;
  r.mm = MmRecord{m.start_code,  m.end_code,  m.start_data, m.end_data,  m.start_brk, m.brk,
                  m.start_stack, m.arg_start, m.arg_end,    m.env_start, m.env_end};
  for (size_t i = 0; i < s.rlimits.size(); ++i) r.rlimits[i] = {s.rlimits[i].cur, s.rlimits[i].max};
  for (size_t i = 0; i < s.signals.size(); ++i) {
    const SignalAction& a = s.signals[i];
    r.signals[i] = {a.handler, a.flags, a.restorer, a.mask};
  }
  r.clocks = {s.clocks.monotonic_ns, s.clocks.boottime_ns};
  b.Put(at, r);
}

// The streaming XXH3 of every area's pages in file order.
Result<uint64_t> PageDataChecksum(const ProcessState& s) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state) return Fail(ErrorCode::kResourceExhausted, "XXH3_createState");
  XXH3_64bits_reset(state.get());
  for (const auto& a : s.areas)
    XXH3_64bits_update(state.get(), a.page_data.data(), a.page_data.size());
  return XXH3_64bits_digest(state.get());
}

}  // namespace

Result<ImageLayout> PlanImage(const ProcessState& s) {
  EMBER_TRY(CheckStateForImage(s));
  ImageLayout out;
  EMBER_ASSIGN_OR_RETURN(out.compat, EncodeCompat(s.compat));

  std::vector<std::vector<PageRunRecord>> runs(s.areas.size());
  uint64_t run_count = 0, stored_pages = 0;
  for (size_t i = 0; i < s.areas.size(); ++i) {
    runs[i] = RunsOf(s.areas[i]);
    run_count += runs[i].size();
    stored_pages += s.areas[i].pages.size();
  }
  if (run_count > kLimits.max_page_runs || stored_pages > kLimits.max_stored_pages) {
    return Invalid(fmt::format("{} stored pages in {} runs (limits {} and {})", stored_pages,
                               run_count, kLimits.max_stored_pages, kLimits.max_page_runs));
  }

  // Every fixed part is reserved first, so that records can point at each other while they are
  // filled in; strings go to the pool at the end.
  MetadataBuilder b;
  const Offsets offsets = ReserveFixedParts(b, s, run_count);
  FillThreads(b, s, offsets);
  FillFilesAndTimers(b, s, offsets);
  FillProcess(b, s, offsets, run_count);
  // Page offsets depend on where the page data section starts, which depends on the metadata's
  // size; the records' sizes are fixed by now and only strings remain to grow it, so the areas
  // (with their strings) are filled with provisional offsets and shifted below.
  uint64_t page_at = 0;
  FillAreas(b, s, offsets, runs, &page_at, &out);
  out.metadata = b.TakeBytes();
  out.relocations = b.TakeRelocations();
  out.working_set = s.working_set;
  if (out.metadata.size() > kLimits.max_metadata_bytes) {
    return Invalid(fmt::format("{} bytes of metadata (limit {})", out.metadata.size(),
                               kLimits.max_metadata_bytes));
  }

  FileHeader& h = out.header;
  std::memcpy(h.magic, kImageMagic, sizeof h.magic);
  h.format_version = kFormatVersion;
  h.header_size = sizeof(FileHeader);
  h.page_size = kPageSize;
  h.section_count = kSectionCount;
  h.limits = kLimits;
  h.counts = ImageCounts{static_cast<uint32_t>(s.threads.size()),
                         static_cast<uint32_t>(s.areas.size()),
                         static_cast<uint32_t>(run_count),
                         static_cast<uint32_t>(s.files.size()),
                         static_cast<uint32_t>(s.itimers.size()),
                         static_cast<uint32_t>(s.posix_timers.size()),
                         out.relocations.size(),
                         stored_pages,
                         out.working_set.size()};
  PlaceSections(&h, out.relocations.size() * 8, out.metadata.size(), stored_pages * kPageSize,
                out.working_set.size() * 8);
  const uint64_t page_base = h.sections[static_cast<int>(SectionKind::kPageData)].offset;
  for (uint64_t i = 0; i < run_count; ++i) {
    PageRunRecord run;
    uint8_t* at = out.metadata.data() + offsets.runs + i * sizeof run;
    std::memcpy(&run, at, sizeof run);
    run.file_offset += page_base;
    std::memcpy(at, &run, sizeof run);
  }
  for (size_t i = 0; i < s.areas.size(); ++i) {
    if (!s.areas[i].pages.empty()) out.area_page_offsets[i] += page_base;
  }

  auto section = [&h](SectionKind k) -> SectionEntry& { return h.sections[static_cast<int>(k)]; };
  section(SectionKind::kCompat).checksum = SectionChecksum(&out.compat, sizeof out.compat);
  section(SectionKind::kRelocations).checksum =
      SectionChecksum(out.relocations.data(), out.relocations.size() * 8);
  EMBER_ASSIGN_OR_RETURN(section(SectionKind::kPageData).checksum, PageDataChecksum(s));
  section(SectionKind::kWorkingSet).checksum =
      SectionChecksum(out.working_set.data(), out.working_set.size() * 8);
  section(SectionKind::kMetadata).checksum =
      SectionChecksum(out.metadata.data(), out.metadata.size());
  h.header_checksum = HeaderChecksum(h);
  return out;
}

}  // namespace ember::snapshot
