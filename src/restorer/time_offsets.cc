#include "restorer/time_offsets.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>

#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

constexpr uint64_t kNanosPerSecond = 1000000000ULL;

uint64_t ReadClock(int clock) {
  struct timespec ts {};
  Check(RawSyscall(SYS_clock_gettime, clock, reinterpret_cast<long>(&ts)),
        snapshot::kStageTimeNamespace, static_cast<uint64_t>(clock));
  return static_cast<uint64_t>(ts.tv_sec) * kNanosPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

// Appends the decimal digits of `value` at `out`; returns how many.
unsigned long PutDecimal(uint64_t value, char* out) {
  char digits[20];
  unsigned long n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (unsigned long i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

}  // namespace

uint64_t ClockOffsetNs(uint64_t recorded_ns, uint64_t now_ns) {
  return recorded_ns > now_ns ? recorded_ns - now_ns : 0;
}

unsigned long FormatTimensOffset(const char* clock, uint64_t offset_ns, char* out) {
  unsigned long n = 0;
  for (const char* c = clock; *c != '\0' && n < 16; ++c) out[n++] = *c;
  out[n++] = ' ';
  n += PutDecimal(offset_ns / kNanosPerSecond, out + n);
  out[n++] = ' ';
  n += PutDecimal(offset_ns % kNanosPerSecond, out + n);
  out[n++] = '\n';
  return n;
}

void SetTimeOffsets(const snapshot::PlanClocks& recorded) {
  struct Clock {
    int id;
    const char* name;
    uint64_t recorded_ns;
  };
  const Clock clocks[] = {{CLOCK_MONOTONIC, "monotonic", recorded.monotonic_ns},
                          {CLOCK_BOOTTIME, "boottime", recorded.boottime_ns}};
  long fd = -1;
  for (const Clock& clock : clocks) {
    const uint64_t offset = ClockOffsetNs(clock.recorded_ns, ReadClock(clock.id));
    if (offset == 0) continue;
    const auto detail = static_cast<uint64_t>(clock.id);
    if (fd < 0) {
      fd = Check(
          RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/timens_offsets"),
                     O_WRONLY | O_CLOEXEC),
          snapshot::kStageTimeNamespace, detail);
    }
    // One line per write: the kernel parses each write from its start (the file position never
    // moves), and a refused line names its clock in the report.
    char line[kTimensLineMax];
    const unsigned long length = FormatTimensOffset(clock.name, offset, line);
    long written =
        RawSyscall(SYS_write, fd, reinterpret_cast<long>(line), static_cast<long>(length));
    Check(written, snapshot::kStageTimeNamespace, detail);
    if (written != static_cast<long>(length))
      Die(snapshot::kStageTimeNamespace, -5 /* EIO */, detail);
  }
  if (fd >= 0) RawSyscall(SYS_close, fd);
}

}  // namespace ember::restorer
