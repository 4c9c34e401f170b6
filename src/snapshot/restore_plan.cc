#include "snapshot/restore_plan.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "base/unique_fd.h"
#include "snapshot/restore_plan_frames.h"

namespace ember::snapshot {
namespace {

constexpr uint32_t kBpfMaxInstructions = 4096;  // BPF_MAXINSNS
constexpr int32_t kStrippedOpenFlags = O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC;

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(value));
  return buf;
}

// Appends tables to the plan; every offset it hands out is inside the bytes it returns.
class PlanBuilder {
 public:
  PlanBuilder() : bytes_(sizeof(PlanHeader)) {}

  template <typename T>
  uint64_t AppendArray(std::span<const T> items, uint64_t align = 8) {
    uint64_t offset = Reserve(items.size() * sizeof(T), align);
    if (!items.empty()) std::memcpy(bytes_.data() + offset, items.data(), items.size() * sizeof(T));
    return offset;
  }
  uint64_t Reserve(uint64_t size, uint64_t align) {
    uint64_t offset = AlignUp(bytes_.size(), align);
    bytes_.resize(offset + size);
    return offset;
  }
  uint32_t AppendString(std::string_view s) {
    auto offset = static_cast<uint32_t>(bytes_.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    bytes_.push_back(0);
    return offset;
  }
  PlanHeader& header() { return *reinterpret_cast<PlanHeader*>(bytes_.data()); }
  uint8_t* at(uint64_t offset) { return bytes_.data() + offset; }
  std::vector<uint8_t> Finish() && {
    header().total_size = bytes_.size();
    return std::move(bytes_);
  }
  uint64_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

Status CheckSettings(const RestoreSettings& s) {
  if (s.seccomp_bpf.size() % 8 != 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "restore settings: the seccomp filter is " + std::to_string(s.seccomp_bpf.size()) +
                    " bytes, not a whole number of 8-byte sock_filter instructions");
  }
  if (s.seccomp_bpf.size() / 8 > kBpfMaxInstructions) {
    return Fail(ErrorCode::kInvalidArgument, "restore settings: the seccomp filter has " +
                                                 std::to_string(s.seccomp_bpf.size() / 8) +
                                                 " instructions, the kernel takes " +
                                                 std::to_string(kBpfMaxInstructions));
  }
  if (s.uid == static_cast<uint32_t>(-1) || s.gid == static_cast<uint32_t>(-1)) {
    return Fail(ErrorCode::kInvalidArgument, "restore settings: uid/gid -1 is not an identity");
  }
  if (!s.exe_path.empty() && s.exe_path[0] != '/') {
    return Fail(ErrorCode::kInvalidArgument,
                "restore settings: exe path '" + s.exe_path + "' is not absolute");
  }
  return Ok();
}

int32_t MapFlagsFor(AreaKind kind) {
  switch (kind) {
    case AreaKind::kFileShared:
      return MAP_SHARED;
    case AreaKind::kStack:
      return MAP_PRIVATE | MAP_GROWSDOWN;
    default:
      return MAP_PRIVATE;
  }
}

Status AddAreas(const ImageReader& image, PlanBuilder& plan) {
  std::vector<PlanArea> areas;
  std::vector<PlanRun> runs;
  // Not a reference into the plan: AppendString below may move its bytes.
  uint64_t kernel[3][2] = {};  // vdso, vvar, vvar_vclock: start, end
  uint64_t kernel_low = ~0ULL, kernel_high = 0;
  for (const AreaRecord& a : image.areas()) {
    std::string name = Hex(a.start) + "-" + Hex(a.end) +
                       (a.path.length ? " (" + std::string(a.path.view()) + ")" : "");
    if (a.start < kRestorerBase + kRestorerSpan && a.end > kRestorerBase) {
      return Fail(ErrorCode::kUnsupported,
                  "restore plan: area " + name + " overlaps the restorer's own range " +
                      Hex(kRestorerBase) + "-" + Hex(kRestorerBase + kRestorerSpan));
    }
    AreaKind kind = a.area_kind();
    if (kind == AreaKind::kVdso || kind == AreaKind::kVvar || kind == AreaKind::kVvarVclock) {
      uint64_t* slot = kernel[kind == AreaKind::kVdso ? 0 : kind == AreaKind::kVvar ? 1 : 2];
      if (slot[0] != 0) return Fail(ErrorCode::kUnsupported, "restore plan: second " + name);
      slot[0] = a.start;
      slot[1] = a.end;
      kernel_low = std::min(kernel_low, a.start);
      kernel_high = std::max(kernel_high, a.end);
      continue;
    }
    PlanArea area{};
    area.start = a.start;
    area.end = a.end;
    area.prot = a.prot;
    area.map_flags = MapFlagsFor(kind);
    area.kind = static_cast<uint8_t>(kind);
    area.dontdump = a.dontdump;
    area.first_run = static_cast<uint32_t>(runs.size());
    area.run_count = a.page_run_count;
    if (kind == AreaKind::kFilePrivate || kind == AreaKind::kFileShared) {
      if (a.path.length == 0)
        return Fail(ErrorCode::kCorrupt, "restore plan: area " + name + " has no path");
      area.path_offset = plan.AppendString(a.path.view());
      area.file_offset = a.file_offset;
    }
    for (const PageRunRecord& r : a.runs()) {
      runs.push_back({a.start + uint64_t{r.first_page} * kPageSize,
                      uint64_t{r.page_count} * kPageSize, r.file_offset});
    }
    areas.push_back(area);
  }
  if (kernel[0][0] == 0 && (kernel[1][0] != 0 || kernel[2][0] != 0)) {
    return Fail(ErrorCode::kUnsupported, "restore plan: [vvar] without [vdso]");
  }
  if (kernel[0][0] != 0 && kernel_high - kernel_low > kVdsoScratchBytes) {
    return Fail(ErrorCode::kUnsupported, "restore plan: vdso and vvar areas span " +
                                             Hex(kernel_high - kernel_low) + " bytes");
  }
  uint64_t areas_offset = plan.AppendArray<PlanArea>(areas);
  uint64_t runs_offset = plan.AppendArray<PlanRun>(runs);
  PlanHeader& header = plan.header();
  header.vdso_start = kernel[0][0];
  header.vdso_end = kernel[0][1];
  header.vvar_start = kernel[1][0];
  header.vvar_end = kernel[1][1];
  header.vclock_start = kernel[2][0];
  header.vclock_end = kernel[2][1];
  header.area_count = static_cast<uint32_t>(areas.size());
  header.areas_offset = areas_offset;
  header.run_count = static_cast<uint32_t>(runs.size());
  header.runs_offset = runs_offset;
  return Ok();
}

// The reconnector's pid: the lowest above 1 that no recorded thread has (StartThreads needs
// those free; pid 1 is the restorer or the process).
int32_t ReconnectorPid(const ImageReader& image) {
  std::vector<int32_t> taken;
  for (const ThreadRecord& t : image.threads()) taken.push_back(t.tid);
  std::sort(taken.begin(), taken.end());
  int32_t pid = 2;
  for (int32_t tid : taken) {
    if (tid == pid) ++pid;
  }
  return pid;
}

Status AddFiles(const ImageReader& image, const RestoreSettings& settings, PlanBuilder& plan) {
  std::vector<PlanFile> files;
  int32_t max_fd = -1;
  uint32_t lazy = 0;
  for (const FileRecord& f : image.files()) {
    PlanFile file{};
    file.fd = f.fd;
    file.cloexec = f.cloexec;
    file.kind = f.kind;
    max_fd = std::max(max_fd, f.fd);
    switch (f.file_kind()) {
      case FileKind::kControlChannel:
        file.source = kFromControl;
        break;
      case FileKind::kPipe:
        if (f.fd < 0 || f.fd > 2) {
          return Fail(ErrorCode::kUnsupported,
                      "restore plan: fd " + std::to_string(f.fd) +
                          " is a pipe; only fds 0-2 can be reconnected to the instance's stdio");
        }
        file.source = static_cast<uint8_t>(kFromStdin + f.fd);
        break;
      default:
        if (f.path.length == 0 || f.path.c_str()[0] != '/') {
          return Fail(ErrorCode::kCorrupt,
                      "restore plan: fd " + std::to_string(f.fd) + " has no absolute path");
        }
        file.source = kFromPath;
        file.reopen = static_cast<uint8_t>(DecideReopen(f, settings, lazy));
        if (file.reopen == kReopenLazy) ++lazy;
        file.open_flags = f.open_flags & ~kStrippedOpenFlags;
        file.offset = f.offset;
        file.path_offset = plan.AppendString(f.path.view());
    }
    files.push_back(file);
  }
  std::sort(files.begin(), files.end(),
            [](const PlanFile& a, const PlanFile& b) { return a.fd < b.fd; });
  uint64_t offset = plan.AppendArray<PlanFile>(files);
  plan.header().files_offset = offset;
  plan.header().file_count = static_cast<uint32_t>(files.size());
  plan.header().max_fd = max_fd;
  plan.header().reconnector_pid = lazy > 0 ? ReconnectorPid(image) : 0;
  return Ok();
}

void AddTimers(const ImageReader& image, PlanBuilder& plan) {
  std::vector<PlanItimer> itimers;
  for (const IntervalTimerRecord& t : image.itimers()) {
    itimers.push_back({t.which, 0, t.interval_ns, t.value_ns});
  }
  std::vector<PlanPosixTimer> timers;
  for (const PosixTimerRecord& t : image.posix_timers()) {
    timers.push_back({t.id, t.clock_id, t.signal, t.notify, t.sigev_value, t.interval_ns,
                      t.value_ns, t.notify_tid, 0});
  }
  uint64_t itimers_offset = plan.AppendArray<PlanItimer>(itimers);
  uint64_t timers_offset = plan.AppendArray<PlanPosixTimer>(timers);
  PlanHeader& h = plan.header();
  h.itimer_count = static_cast<uint32_t>(itimers.size());
  h.itimers_offset = itimers_offset;
  h.posix_timer_count = static_cast<uint32_t>(timers.size());
  h.posix_timers_offset = timers_offset;
}

// The working set as image ranges: each page that is stored maps to its offset in the page
// data; neighbours in the file become one range, so the prefetch is a few large reads. The
// stored pages of private file mappings are read whole besides: a restore used to copy them
// (so a cold boot left them cached and the image resident for warm boots after it), and they
// are few (a Python instance: ~1.4 MiB, most of it libpython's data).
void AddPrefetch(const ImageReader& image, PlanBuilder& plan) {
  std::vector<uint64_t> offsets;
  auto areas = image.areas();
  for (const AreaRecord& a : areas) {
    if (a.area_kind() != AreaKind::kFilePrivate) continue;
    for (const PageRunRecord& r : a.runs()) {
      for (uint32_t i = 0; i < r.page_count; ++i) offsets.push_back(r.file_offset + i * kPageSize);
    }
  }
  for (uint64_t page : image.working_set()) {
    auto it = std::upper_bound(areas.begin(), areas.end(), page,
                               [](uint64_t p, const AreaRecord& a) { return p < a.start; });
    if (it == areas.begin()) continue;
    const AreaRecord& a = *(it - 1);
    if (page >= a.end) continue;
    uint64_t index = (page - a.start) / kPageSize;
    for (const PageRunRecord& r : a.runs()) {
      if (index >= r.first_page && index < r.first_page + r.page_count) {
        offsets.push_back(r.file_offset + (index - r.first_page) * kPageSize);
        break;
      }
    }
  }
  std::sort(offsets.begin(), offsets.end());
  std::vector<PlanRange> ranges;
  for (uint64_t offset : offsets) {
    if (!ranges.empty() && ranges.back().image_offset + ranges.back().length >= offset) {
      ranges.back().length =
          std::max(ranges.back().length, offset + kPageSize - ranges.back().image_offset);
    } else {
      ranges.push_back({offset, kPageSize});
    }
  }
  uint64_t offset = plan.AppendArray<PlanRange>(ranges);
  plan.header().prefetch_offset = offset;
  plan.header().prefetch_count = static_cast<uint32_t>(ranges.size());
}

}  // namespace

PlanReopen DecideReopen(const FileRecord& file, const RestoreSettings& settings,
                        uint32_t lazy_so_far) {
  bool lazy = settings.lazy_files && file.file_kind() == FileKind::kRegular &&
              lazy_so_far < kPlanMaxLazyFiles;
  return lazy ? kReopenLazy : kReopenEager;
}

Result<std::vector<uint8_t>> BuildRestorePlan(const ImageReader& image,
                                              const RestoreSettings& settings) {
  EMBER_TRY(CheckSettings(settings));
  const ProcessRecord& p = image.process();
  if (p.thread_count == 0 || p.thread_count > kPlanMaxThreads) {
    return Fail(ErrorCode::kUnsupported, "restore plan: " + std::to_string(p.thread_count) +
                                             " threads (1 to " + std::to_string(kPlanMaxThreads) +
                                             " can be restored)");
  }
  if (p.pid <= 0)
    return Fail(ErrorCode::kCorrupt, "restore plan: recorded pid " + std::to_string(p.pid));
  PlanBuilder plan;
  {
    PlanHeader& h = plan.header();
    std::memcpy(h.magic, kPlanMagic, sizeof h.magic);
    h.version = kPlanVersion;
    h.header_size = sizeof(PlanHeader);
    h.pid = p.pid;
    h.uid = settings.uid;
    h.gid = settings.gid;
    h.umask = p.umask;
    if (settings.memory_mode == RestoreSettings::MemoryMode::kCopy) h.flags |= kPlanCopyMemory;
    if (settings.time_namespace) h.flags |= kPlanTimeNamespace;
    if (settings.prefetch_working_set) h.flags |= kPlanPrefetch;
    static_assert(sizeof(PlanMm) == sizeof(MmRecord));
    std::memcpy(&h.mm, &p.mm, sizeof h.mm);
    static_assert(sizeof(h.rlimits) == sizeof(p.rlimits));
    std::memcpy(h.rlimits, p.rlimits, sizeof h.rlimits);
    static_assert(sizeof(h.sigactions) == sizeof(p.signals));
    std::memcpy(h.sigactions, p.signals, sizeof h.sigactions);
    h.checkpoint_clocks = {p.clocks.monotonic_ns, p.clocks.boottime_ns};
    h.xsave_size = image.compat().xsave_size;
  }
  uint32_t cwd = plan.AppendString(p.cwd.length ? p.cwd.view() : "/");
  plan.header().cwd_offset = cwd;
  if (!settings.exe_path.empty()) {
    uint32_t exe = plan.AppendString(settings.exe_path);
    plan.header().exe_path_offset = exe;
    plan.header().flags |= kPlanSetExe;
  }
  EMBER_TRY(AddAreas(image, plan));
  EMBER_TRY(AddFiles(image, settings, plan));
  AddTimers(image, plan);
  if (settings.prefetch_working_set) AddPrefetch(image, plan);
  uint64_t seccomp = plan.AppendArray<uint8_t>(settings.seccomp_bpf);
  plan.header().seccomp_offset = seccomp;
  plan.header().seccomp_len = static_cast<uint32_t>(settings.seccomp_bpf.size() / 8);
  uint64_t auxv = plan.AppendArray<uint64_t>(image.auxv());
  plan.header().auxv_offset = auxv;
  plan.header().auxv_words = static_cast<uint32_t>(image.auxv().size());
  // Frames last: they are the bulk of the plan (one xsave area per thread).
  std::vector<PlanThread> threads;
  for (const ThreadRecord& t : image.threads()) {
    uint64_t frame = plan.Reserve(ThreadFrameBytes(t.xsave_size), kXsaveAlign);
    EMBER_TRY(WriteThreadFrame(t, image.compat(), frame, plan.at(frame)));
    threads.push_back(PlanThreadOf(t, frame));
  }
  uint64_t threads_offset = plan.AppendArray<PlanThread>(threads);
  plan.header().threads_offset = threads_offset;
  plan.header().thread_count = static_cast<uint32_t>(threads.size());
  if (plan.size() > kPlanMaxBytes) {
    return Fail(ErrorCode::kUnsupported, "restore plan: " + std::to_string(plan.size()) +
                                             " bytes, more than the restorer's slot of " +
                                             std::to_string(kPlanMaxBytes));
  }
  return std::move(plan).Finish();
}

Result<UniqueFd> PlanMemfd(std::span<const uint8_t> plan) {
  UniqueFd fd(::memfd_create("ember-restore-plan", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return FailErrno("restore plan: memfd_create");
  size_t done = 0;
  while (done < plan.size()) {
    ssize_t n = ::write(fd.get(), plan.data() + done, plan.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return FailErrno("restore plan: write " + std::to_string(plan.size()) +
                       " bytes to its memfd");
    done += static_cast<size_t>(n);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) !=
      0) {
    return FailErrno("restore plan: seal its memfd");
  }
  return fd;
}

std::string_view RestoreStageName(uint32_t stage) {
  static constexpr std::string_view kNames[] = {
      "success",
      "read the plan",
      "move the restorer's fds",
      "enter a time namespace",
      "clone the process",
      "prefetch the working set",
      "move the vdso out of the way",
      "unmap the restorer's memory",
      "map area",
      "fill area",
      "protect area",
      "place the vdso",
      "set the mm bounds (PR_SET_MM_MAP)",
      "open fd",
      "change directory",
      "set rlimit",
      "set sigaction",
      "set interval timer",
      "create POSIX timer",
      "install the memory shim",
      "clone thread",
      "restore thread state",
      "switch uid/gid",
      "drop capabilities",
      "set no_new_privs",
      "install the seccomp filter",
      "rt_sigreturn",
      "restored task died before its report",
      "hand lazy files to the reconnector",
      "take over the restore shell (set the hostname)",
  };
  static_assert(std::size(kNames) == kStageCount);
  return stage < kStageCount ? kNames[stage] : "unknown stage";
}

Status CheckRestoreReport(const RestoreReport& report) {
  if (report.magic != kReportMagic) {
    return Fail(ErrorCode::kCorrupt, "restore: the restorer's report has a bad magic");
  }
  if (report.stage == kStageSuccess) return Ok();
  std::string message = "restore: " + std::string(RestoreStageName(report.stage));
  switch (report.stage) {
    case kStageMapArea:
    case kStageFillArea:
    case kStageProtectArea:
    case kStageMoveVdso:
      message += " at " + Hex(report.detail);
      break;
    case kStageTaskDied:
      message += " (wait status " + Hex(report.detail) + ")";
      break;
    case kStageTimeNamespace:
      // detail: the clock whose offset was refused; 0 for the namespace itself.
      if (report.detail == CLOCK_MONOTONIC) message += " (the CLOCK_MONOTONIC offset)";
      if (report.detail == CLOCK_BOOTTIME) message += " (the CLOCK_BOOTTIME offset)";
      break;
    default:
      message += " " + std::to_string(report.detail);
  }
  if (report.error != 0) return FailErrno(message, report.error);
  return Fail(ErrorCode::kInternal, message);
}

}  // namespace ember::snapshot
