// libFuzzer target for the snapshot image reader (scripts/fuzz-snapshot.sh builds and runs it
// under ASan and UBSan). Each input is opened twice: as given, which mostly exercises the header
// and checksum checks, and with its checksums recomputed (RestampChecksums), so that mutations
// reach the section table, the relocation table and the record walk that proves pointers safe.
// Whatever opens is then used the way the restorer and inspect use it: every pointer followed,
// every string read to its NUL, every page run read, both renderings produced. Any crash,
// out-of-bounds read or undefined behaviour is a bug in the reader's validation.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "snapshot/compat.h"
#include "snapshot/image_reader.h"
#include "snapshot/image_writer.h"
#include "snapshot/inspect.h"

namespace {

using namespace ember::snapshot;

// Reads every byte the records reach, so ASan sees any pointer the validation let through.
uint64_t Touch(const ImageReader& image) {
  uint64_t sum = 0;
  const ProcessRecord& p = image.process();
  sum += std::strlen(p.cwd.c_str()) + std::strlen(p.exe.c_str()) + p.signals[63].handler;
  for (const ThreadRecord& t : image.threads()) {
    for (uint8_t b : t.xsave_bytes()) sum += b;
    sum += t.regs.rip;
  }
  for (const AreaRecord& a : image.areas()) {
    sum += std::strlen(a.path.c_str());
    for (const PageRunRecord& r : a.runs()) {
      uint8_t last = 0;
      // The run must lie inside the file: pread the last byte of the run.
      if (::pread(image.fd(), &last, 1,
                  static_cast<off_t>(r.file_offset + uint64_t{r.page_count} * kPageSize - 1)) !=
          1) {
        __builtin_trap();
      }
      sum += last + r.first_page;
    }
  }
  for (const FileRecord& f : image.files()) sum += std::strlen(f.path.c_str()) + f.offset;
  for (const IntervalTimerRecord& t : image.itimers()) sum += t.value_ns;
  for (const PosixTimerRecord& t : image.posix_timers()) sum += t.value_ns;
  for (uint64_t w : image.auxv()) sum += w;
  for (uint64_t w : image.working_set()) sum += w;
  return sum;
}

void OpenAndUse(const uint8_t* data, size_t size) {
  int raw = ::memfd_create("snapshot-fuzz", MFD_CLOEXEC);
  if (raw < 0) __builtin_trap();
  ember::UniqueFd fd(raw);
  for (size_t done = 0; done < size;) {
    ssize_t n = ::write(fd.get(), data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  auto image = ImageReader::Open(std::move(fd), "fuzz.snap");
  if (!image) return;
  volatile uint64_t sink = Touch(*image);
  (void)sink;
  InspectExtras extras;
  extras.host_compat = CheckCompat(image->compat(), DecodeCompat(image->compat()));
  extras.pages_verified = static_cast<bool>(image->VerifyPages());
  sink = RenderImageText(*image, extras).size() + RenderImageJson(*image, extras).size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  OpenAndUse(data, size);
  std::vector<uint8_t> restamped(data, data + size);
  if (RestampChecksums(restamped)) OpenAndUse(restamped.data(), restamped.size());
  return 0;
}
