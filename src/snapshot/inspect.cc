#include "snapshot/inspect.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include <iterator>
#include <nlohmann/json.hpp>

#include "base/units.h"
#include "snapshot/compat.h"

namespace ember::snapshot {
namespace {

using nlohmann::json;

std::string Hex(uint64_t v) { return fmt::format("{:#x}", v); }

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  if (abbrev != nullptr) return std::string("SIG") + abbrev;
  return fmt::format("SIGRT{}", signal - SIGRTMIN);
}

std::string_view TimerWhich(int32_t which) {
  switch (which) {
    case 0:
      return "real";
    case 1:
      return "virtual";
    case 2:
      return "prof";
  }
  return "unknown";
}

std::string_view NotifyName(int32_t notify) {
  switch (notify) {
    case 0:
      return "signal";
    case 1:
      return "none";
    case 2:
      return "thread";
    case 4:
      return "thread-id";
  }
  return "unknown";
}

std::string Seconds(uint64_t ns) { return fmt::format("{:.6f}s", static_cast<double>(ns) / 1e9); }

std::string HandlerName(uint64_t handler) { return handler == 1 ? "SIG_IGN" : Hex(handler); }

json SectionsJson(const FileHeader& h) {
  json out = json::array();
  for (const SectionEntry& s : h.sections) {
    out.push_back({{"name", SectionName(static_cast<SectionKind>(s.kind))},
                   {"offset", s.offset},
                   {"size", s.size},
                   {"checksum", Hex(s.checksum)}});
  }
  return out;
}

json CompatJson(const CompatRecordView& c) {
  return {{"kernel_release", FixedString(c.kernel_release)},
          {"vdso_size", c.vdso_size},
          {"vdso_xxh64", Hex(c.vdso_hash)},
          {"cpuid_1_ecx", Hex(c.cpuid_1_ecx)},
          {"cpuid_1_edx", Hex(c.cpuid_1_edx)},
          {"cpuid_7_ebx", Hex(c.cpuid_7_ebx)},
          {"cpuid_7_ecx", Hex(c.cpuid_7_ecx)},
          {"cpuid_7_edx", Hex(c.cpuid_7_edx)},
          {"xcr0", Hex(c.xcr0)},
          {"xsave_size", c.xsave_size},
          {"glibc", FixedString(c.glibc_version)},
          {"ember_version", FixedString(c.ember_version)}};
}

json ThreadJson(const ThreadRecord& t) {
  return {{"tid", t.tid},
          {"rip", Hex(t.regs.rip)},
          {"rsp", Hex(t.regs.rsp)},
          {"fs_base", Hex(t.fs_base)},
          {"sigmask", Hex(t.sigmask)},
          {"xsave_size", t.xsave_size},
          {"rseq", {{"addr", Hex(t.rseq_addr)}, {"len", t.rseq_len}, {"sig", Hex(t.rseq_sig)}}},
          {"altstack", {{"sp", Hex(t.altstack_sp)}, {"size", t.altstack_size}}},
          {"restart_syscall", t.restart_syscall()}};
}

json AreaJson(const AreaRecord& a) {
  json runs = json::array();
  for (const PageRunRecord& r : a.runs()) {
    runs.push_back(
        {{"first_page", r.first_page}, {"pages", r.page_count}, {"file_offset", r.file_offset}});
  }
  return {{"start", Hex(a.start)},
          {"end", Hex(a.end)},
          {"prot", ProtString(a.prot, a.flags)},
          {"kind", AreaKindName(a.area_kind())},
          {"path", a.path.view()},
          {"file_offset", a.file_offset},
          {"dontdump", a.dontdump != 0},
          {"stored_pages", a.stored_pages},
          {"stored_bytes", a.stored_pages * kPageSize},
          {"runs", runs}};
}

json ProcessJson(const ImageReader& image) {
  const ProcessRecord& p = image.process();
  json threads = json::array(), areas = json::array(), files = json::array();
  for (const ThreadRecord& t : image.threads()) threads.push_back(ThreadJson(t));
  for (const AreaRecord& a : image.areas()) areas.push_back(AreaJson(a));
  for (const FileRecord& f : image.files()) {
    files.push_back({{"fd", f.fd},
                     {"kind", FileKindName(f.file_kind())},
                     {"path", f.path.view()},
                     {"flags", Hex(static_cast<uint32_t>(f.open_flags))},
                     {"cloexec", f.cloexec != 0},
                     {"offset", f.offset}});
  }
  json signals = json::array();
  for (int n = 1; n <= 64; ++n) {
    const SignalActionRecord& s = p.signals[n - 1];
    if (s.handler == 0) continue;
    signals.push_back({{"signal", n},
                       {"name", SignalName(n)},
                       {"handler", HandlerName(s.handler)},
                       {"flags", Hex(s.flags)},
                       {"mask", Hex(s.mask)}});
  }
  json timers = json::array();
  for (const IntervalTimerRecord& t : image.itimers()) {
    timers.push_back({{"type", "itimer"},
                      {"which", TimerWhich(t.which)},
                      {"value_ns", t.value_ns},
                      {"interval_ns", t.interval_ns}});
  }
  for (const PosixTimerRecord& t : image.posix_timers()) {
    timers.push_back({{"type", "posix"},
                      {"id", t.id},
                      {"clock", t.clock_id},
                      {"signal", t.signal},
                      {"notify", NotifyName(t.notify)},
                      {"value_ns", t.value_ns},
                      {"interval_ns", t.interval_ns}});
  }
  json clocks = {{"monotonic_ns", p.clocks.monotonic_ns}, {"boottime_ns", p.clocks.boottime_ns}};
  return {{"pid", p.pid},         {"umask", fmt::format("{:04o}", p.umask)},
          {"cwd", p.cwd.view()},  {"exe", p.exe.view()},
          {"brk", Hex(p.mm.brk)}, {"threads", threads},
          {"areas", areas},       {"files", files},
          {"signals", signals},   {"timers", timers},
          {"clocks", clocks}};
}

}  // namespace

std::string_view AreaKindName(AreaKind kind) {
  switch (kind) {
    case AreaKind::kAnonymous:
      return "anon";
    case AreaKind::kFilePrivate:
      return "file-private";
    case AreaKind::kFileShared:
      return "file-shared";
    case AreaKind::kStack:
      return "stack";
    case AreaKind::kVdso:
      return "vdso";
    case AreaKind::kVvar:
      return "vvar";
    case AreaKind::kVvarVclock:
      return "vvar-vclock";
  }
  return "unknown";
}

std::string_view FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kRegular:
      return "regular";
    case FileKind::kDirectory:
      return "directory";
    case FileKind::kControlChannel:
      return "control-channel";
    case FileKind::kDevice:
      return "device";
    case FileKind::kPipe:
      return "pipe";
  }
  return "unknown";
}

std::string ProtString(int32_t prot, int32_t flags) {
  std::string s = "----";
  if ((prot & PROT_READ) != 0) s[0] = 'r';
  if ((prot & PROT_WRITE) != 0) s[1] = 'w';
  if ((prot & PROT_EXEC) != 0) s[2] = 'x';
  s[3] = (flags & MAP_SHARED) != 0 ? 's' : 'p';
  return s;
}

std::string RenderImageJson(const ImageReader& image, const InspectExtras& extras) {
  const FileHeader& h = image.header();
  json doc = {{"file", image.name()},
              {"format_version", h.format_version},
              {"file_size", h.file_size},
              {"sections", SectionsJson(h)},
              {"compat", CompatJson(image.compat())},
              {"process", ProcessJson(image)},
              {"stored_pages", h.counts.stored_pages},
              {"page_runs", h.counts.page_runs},
              {"working_set_pages", image.working_set().size()},
              {"pages_verified", extras.pages_verified}};
  if (extras.host_compat) {
    doc["host_compatible"] = static_cast<bool>(*extras.host_compat);
    if (!*extras.host_compat) doc["host_incompatibility"] = extras.host_compat->error().message();
  }
  return doc.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string RenderImageText(const ImageReader& image, const InspectExtras& extras) {
  const FileHeader& h = image.header();
  const ProcessRecord& p = image.process();
  std::string out;
  auto line = [&out]<typename... Args>(fmt::format_string<Args...> format, Args&&... args) {
    fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
    out.push_back('\n');
  };
  line("snapshot {}: format {}, {} ({} bytes)", image.name(), h.format_version,
       FormatSize(h.file_size), h.file_size);
  for (const SectionEntry& s : h.sections) {
    line("  section {:<12} offset {:>10}  size {:>10}  xxh3 {:016x}",
         SectionName(static_cast<SectionKind>(s.kind)), s.offset, s.size, s.checksum);
  }
  const CompatRecordView& c = image.compat();
  line("compat: kernel {}, vDSO {} bytes xxh64 {}, glibc {}, ember {}",
       FixedString(c.kernel_release), c.vdso_size, Hex(c.vdso_hash), FixedString(c.glibc_version),
       FixedString(c.ember_version));
  line("  cpuid 1 ecx {} edx {}, cpuid 7 ebx {} ecx {} edx {}, xcr0 {}, xsave {} bytes",
       Hex(c.cpuid_1_ecx), Hex(c.cpuid_1_edx), Hex(c.cpuid_7_ebx), Hex(c.cpuid_7_ecx),
       Hex(c.cpuid_7_edx), Hex(c.xcr0), c.xsave_size);
  if (extras.host_compat) {
    line("  {}", *extras.host_compat ? std::string("this host can restore it")
                                     : extras.host_compat->error().message());
  }
  line("process: pid {}, umask {:04o}, cwd {}, exe {}", p.pid, p.umask, p.cwd.view(), p.exe.view());
  line("  brk {}-{}, stack {}, pending signals {}", Hex(p.mm.start_brk), Hex(p.mm.brk),
       Hex(p.mm.start_stack), Hex(p.pending_signals));
  line("  clocks at checkpoint: monotonic {}, boottime {}", Seconds(p.clocks.monotonic_ns),
       Seconds(p.clocks.boottime_ns));
  line("threads ({}):", image.threads().size());
  for (const ThreadRecord& t : image.threads()) {
    line("  tid {:<6} rip {:#018x} rsp {:#018x} fs {:#x} rseq {} (len {}, sig {}){}", t.tid,
         t.regs.rip, t.regs.rsp, t.fs_base, Hex(t.rseq_addr), t.rseq_len, Hex(t.rseq_sig),
         t.restart_syscall() ? " restarts its syscall" : "");
  }
  line("areas ({}, {} stored pages = {} in {} runs):", image.areas().size(), h.counts.stored_pages,
       FormatSize(h.counts.stored_pages * kPageSize), h.counts.page_runs);
  for (const AreaRecord& a : image.areas()) {
    line("  {:012x}-{:012x} {} {:<12} {:>5} stored pages in {:>3} runs ({}){}{}", a.start, a.end,
         ProtString(a.prot, a.flags), AreaKindName(a.area_kind()), a.stored_pages, a.page_run_count,
         FormatSize(a.stored_pages * kPageSize), a.path.length ? " " : "", a.path.view());
  }
  line("files ({}):", image.files().size());
  for (const FileRecord& f : image.files()) {
    line("  fd {:<4} {:<15} {} flags {:#o}{} offset {}", f.fd, FileKindName(f.file_kind()),
         f.path.view(), static_cast<uint32_t>(f.open_flags), f.cloexec ? " cloexec" : "", f.offset);
  }
  line("signals with handlers:");
  for (int n = 1; n <= 64; ++n) {
    const SignalActionRecord& s = p.signals[n - 1];
    if (s.handler == 0) continue;
    line("  {:<10} {} flags {} mask {}", SignalName(n), HandlerName(s.handler), Hex(s.flags),
         Hex(s.mask));
  }
  line("timers ({}):", image.itimers().size() + image.posix_timers().size());
  for (const IntervalTimerRecord& t : image.itimers()) {
    line("  itimer {:<8} value {} interval {}", TimerWhich(t.which), Seconds(t.value_ns),
         Seconds(t.interval_ns));
  }
  for (const PosixTimerRecord& t : image.posix_timers()) {
    line("  posix timer {} clock {} signal {} notify {} value {} interval {}", t.id, t.clock_id,
         t.signal, NotifyName(t.notify), Seconds(t.value_ns), Seconds(t.interval_ns));
  }
  line("working set: {} pages ({})", image.working_set().size(),
       FormatSize(image.working_set().size() * kPageSize));
  if (extras.pages_verified) line("page data: every checksum matches");
  return out;
}

}  // namespace ember::snapshot
