#include "snapshot/compat.h"

#include <cpuid.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "base/fs.h"

namespace ember::snapshot {
namespace {

template <size_t N>
Status PutFixed(char (&field)[N], std::string_view value, const char* name) {
  if (value.size() >= N || value.find('\0') != std::string_view::npos) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("compat record: {} '{}' does not fit the {}-byte field", name, value, N - 1));
  }
  std::memset(field, 0, N);
  std::memcpy(field, value.data(), value.size());
  return Ok();
}

// The [vdso] line of /proc/self/maps: "7ffc1b1e6000-7ffc1b1e8000 r-xp 00000000 00:00 0 [vdso]".
Result<std::pair<uint64_t, uint64_t>> FindVdso() {
  EMBER_ASSIGN_OR_RETURN(std::string maps, ReadFile("/proc/self/maps"));
  size_t pos = 0;
  while (pos < maps.size()) {
    size_t eol = maps.find('\n', pos);
    if (eol == std::string::npos) eol = maps.size();
    std::string_view line(maps.data() + pos, eol - pos);
    pos = eol + 1;
    if (line.size() < 6 || line.substr(line.size() - 6) != "[vdso]") continue;
    unsigned long long start = 0, end = 0;
    if (std::sscanf(std::string(line).c_str(), "%llx-%llx", &start, &end) != 2 || end <= start) {
      return Fail(ErrorCode::kInternal,
                  "/proc/self/maps: unreadable [vdso] line: " + std::string(line));
    }
    return std::pair<uint64_t, uint64_t>{start, end};
  }
  return Fail(ErrorCode::kUnavailable, "/proc/self/maps has no [vdso] mapping");
}

Status HashVdso(CompatRecord* record) {
  EMBER_ASSIGN_OR_RETURN(auto range, FindVdso());
  std::vector<uint8_t> bytes(range.second - range.first);
  // Through /proc/self/mem rather than a pointer: no integer-to-pointer cast, and a read error
  // is an error instead of a fault.
  EMBER_ASSIGN_OR_RETURN(auto mem, OpenFile("/proc/self/mem", O_RDONLY));
  ssize_t n = ::pread(mem.get(), bytes.data(), bytes.size(), static_cast<off_t>(range.first));
  if (n != static_cast<ssize_t>(bytes.size())) return FailErrno("read [vdso] from /proc/self/mem");
  record->vdso_size = bytes.size();
  record->vdso_hash = XXH64(bytes.data(), bytes.size(), 0);
  return Ok();
}

}  // namespace

void ReadCpuFeatures(CompatRecord* record) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(1, 0, &a, &b, &c, &d) != 0) {
    record->cpuid_1_ecx = c;
    record->cpuid_1_edx = d;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) != 0) {
    record->cpuid_7_ebx = b;
    record->cpuid_7_ecx = c;
    record->cpuid_7_edx = d;
  }
  constexpr uint32_t kOsxsave = 1u << 27;  // leaf 1 ecx: XGETBV is usable
  if ((record->cpuid_1_ecx & kOsxsave) != 0) {
    uint32_t lo = 0, hi = 0;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    record->xcr0 = (uint64_t{hi} << 32) | lo;
    // Leaf 0xD subleaf 0 ebx: the xsave area size for the features enabled in XCR0.
    if (__get_cpuid_count(0xD, 0, &a, &b, &c, &d) != 0) record->xsave_size = b;
  }
}

namespace {

std::string Hex(uint64_t v) { return fmt::format("{:#x}", v); }

tl::unexpected<Error> Refuse(std::string_view message) {
  return Fail(ErrorCode::kUnsupported,
              "snapshot is not compatible with this host: " + std::string(message));
}

}  // namespace

Result<CompatRecord> HostCompat(std::string libc) {
  CompatRecord record;
  struct utsname uts {};
  if (::uname(&uts) != 0) return FailErrno("uname");
  record.kernel_release = uts.release;
  EMBER_TRY_CTX(HashVdso(&record), "host compat record");
  ReadCpuFeatures(&record);
  record.glibc_version = std::move(libc);
  record.ember_version = EMBER_VERSION;
  return record;
}

Result<CompatRecordView> EncodeCompat(const CompatRecord& r) {
  CompatRecordView v{};
  EMBER_TRY(PutFixed(v.kernel_release, r.kernel_release, "kernel release"));
  EMBER_TRY(PutFixed(v.glibc_version, r.glibc_version, "glibc version"));
  EMBER_TRY(PutFixed(v.ember_version, r.ember_version, "ember version"));
  v.vdso_hash = r.vdso_hash;
  v.vdso_size = r.vdso_size;
  v.cpuid_1_ecx = r.cpuid_1_ecx;
  v.cpuid_1_edx = r.cpuid_1_edx;
  v.cpuid_7_ebx = r.cpuid_7_ebx;
  v.cpuid_7_ecx = r.cpuid_7_ecx;
  v.cpuid_7_edx = r.cpuid_7_edx;
  v.xsave_size = r.xsave_size;
  v.xcr0 = r.xcr0;
  return v;
}

CompatRecord DecodeCompat(const CompatRecordView& v) {
  CompatRecord r;
  r.kernel_release = FixedString(v.kernel_release);
  r.glibc_version = FixedString(v.glibc_version);
  r.ember_version = FixedString(v.ember_version);
  r.vdso_hash = v.vdso_hash;
  r.vdso_size = v.vdso_size;
  r.cpuid_1_ecx = v.cpuid_1_ecx;
  r.cpuid_1_edx = v.cpuid_1_edx;
  r.cpuid_7_ebx = v.cpuid_7_ebx;
  r.cpuid_7_ecx = v.cpuid_7_ecx;
  r.cpuid_7_edx = v.cpuid_7_edx;
  r.xsave_size = v.xsave_size;
  r.xcr0 = v.xcr0;
  return r;
}

Status CheckCompat(const CompatRecordView& snapshot, const CompatRecord& host) {
  const CompatRecord snap = DecodeCompat(snapshot);
  if (snap.kernel_release != host.kernel_release) {
    return Refuse(fmt::format("snapshot was taken on kernel {}, this host runs {}",
                              snap.kernel_release, host.kernel_release));
  }
  if (snap.vdso_size != host.vdso_size || snap.vdso_hash != host.vdso_hash) {
    return Refuse(fmt::format(
        "snapshot was taken with a vDSO of {} bytes (xxh64 {}), this host's vDSO is {} bytes "
        "(xxh64 {})",
        snap.vdso_size, Hex(snap.vdso_hash), host.vdso_size, Hex(host.vdso_hash)));
  }
  struct Features {
    const char* name;
    uint32_t snap, host;
  };
  const Features features[] = {
      {"cpuid 1 ecx", snap.cpuid_1_ecx, host.cpuid_1_ecx},
      {"cpuid 1 edx", snap.cpuid_1_edx, host.cpuid_1_edx},
      {"cpuid 7 ebx", snap.cpuid_7_ebx, host.cpuid_7_ebx},
      {"cpuid 7 ecx", snap.cpuid_7_ecx, host.cpuid_7_ecx},
      {"cpuid 7 edx", snap.cpuid_7_edx, host.cpuid_7_edx},
  };
  for (const auto& f : features) {
    if (uint32_t missing = f.snap & ~f.host; missing != 0) {
      return Refuse(fmt::format(
          "snapshot was taken on a CPU with {} {}, this host has {} (missing feature bits {})",
          f.name, Hex(f.snap), Hex(f.host), Hex(missing)));
    }
  }
  if (snap.xcr0 != host.xcr0) {
    return Refuse(fmt::format("snapshot was taken with xcr0 {}, this host has xcr0 {}",
                              Hex(snap.xcr0), Hex(host.xcr0)));
  }
  if (snap.xsave_size != host.xsave_size) {
    return Refuse(
        fmt::format("snapshot was taken with an xsave area of {} bytes, this host's is {} bytes",
                    snap.xsave_size, host.xsave_size));
  }
  if (snap.glibc_version != host.glibc_version) {
    return Refuse(fmt::format("snapshot was taken with glibc {}, this host has glibc {}",
                              snap.glibc_version, host.glibc_version));
  }
  if (snap.ember_version != host.ember_version) {
    return Refuse(fmt::format("snapshot was taken by ember {}, this is ember {}",
                              snap.ember_version, host.ember_version));
  }
  return Ok();
}

}  // namespace ember::snapshot
