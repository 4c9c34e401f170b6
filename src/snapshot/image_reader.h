// Opening a snapshot image (format.h) for restore: the header and small sections are read and
// verified, the metadata section is mmap'ed MAP_PRIVATE, proven safe (metadata_check.h),
// relocated once in place and made read-only. From then on the records are used directly, as
// plain structs with real pointers: restore parses nothing and allocates nothing per record.
//
//   auto image = ImageReader::Open(path);            // or Open(std::move(fd), name)
//   EMBER_TRY(CheckCompat(image->compat(), host));
//   for (const ThreadRecord& t : image->threads()) ... t.regs, t.xsave_bytes() ...
//   for (const AreaRecord& a : image->areas())
//     for (const PageRunRecord& r : a.runs())
//       mmap(a.start + r.first_page * 4096, r.page_count * 4096, a.prot,
//            MAP_PRIVATE | MAP_FIXED, image->fd(), r.file_offset);
//
// The page data is not read at open; VerifyPages() checks it on request.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/mapped_region.h"
#include "base/unique_fd.h"
#include "snapshot/format.h"

namespace ember::snapshot {

class ImageReader {
 public:
  // Errors are kCorrupt or kUnsupported (image_header.h) with "snapshot image PATH: " in front.
  static Result<ImageReader> Open(const std::string& path);
  // `name` is used in errors only.
  static Result<ImageReader> Open(UniqueFd fd, std::string name);

  ImageReader(ImageReader&&) = default;
  ImageReader& operator=(ImageReader&&) = default;

  const std::string& name() const { return name_; }
  // Page runs are mapped from this fd at PageRunRecord::file_offset.
  int fd() const { return fd_.get(); }
  const FileHeader& header() const { return header_; }
  const CompatRecordView& compat() const { return compat_; }

  // The relocated records; valid while this reader lives (the mapping moves with it).
  const ProcessRecord& process() const { return *metadata_.as<const ProcessRecord>(); }
  std::span<const ThreadRecord> threads() const { return process().thread_records(); }
  std::span<const AreaRecord> areas() const { return process().area_records(); }
  std::span<const FileRecord> files() const { return process().file_records(); }
  std::span<const IntervalTimerRecord> itimers() const { return process().itimer_records(); }
  std::span<const PosixTimerRecord> posix_timers() const { return process().posix_timer_records(); }
  std::span<const uint64_t> auxv() const { return process().auxv_words_span(); }
  std::span<const uint64_t> working_set() const { return working_set_; }

  // Reads every stored page and checks the page data section's checksum and each area's; the
  // error names the first area whose pages differ.
  Status VerifyPages() const;

 private:
  ImageReader() = default;

  UniqueFd fd_;
  std::string name_;
  FileHeader header_{};
  CompatRecordView compat_{};
  MappedRegion metadata_;
  std::vector<uint64_t> working_set_;
};

// Reads and verifies only the header and the working-set section: what the prefetcher needs
// before the instance's pages are touched.
Result<std::vector<uint64_t>> ReadWorkingSet(const std::string& path);

}  // namespace ember::snapshot
