#include "snapshot/image_header.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "snapshot/image_layout.h"

namespace ember::snapshot {
namespace {

tl::unexpected<Error> Corrupt(std::string message) {
  return Fail(ErrorCode::kCorrupt, std::move(message));
}

Status PreadExactly(int fd, void* buf, size_t size, uint64_t offset, std::string_view what) {
  auto* p = static_cast<uint8_t*>(buf);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno(fmt::format("read the {}", what));
    if (n == 0) return Corrupt(fmt::format("truncated: the file ended inside the {}", what));
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return Ok();
}

Status CheckCount(const char* what, uint64_t count, uint64_t header_limit, uint64_t reader_limit) {
  const uint64_t limit = std::min(header_limit, reader_limit);
  if (count > limit) {
    return Corrupt(fmt::format("{} {} exceed the limit of {}{}", count, what, limit,
                               limit == reader_limit ? "" : " declared in the header"));
  }
  return Ok();
}

Status CheckLimits(const FileHeader& h) {
  const SizeLimits& l = h.limits;
  const ImageCounts& c = h.counts;
  EMBER_TRY(CheckCount("threads", c.threads, l.max_threads, kLimits.max_threads));
  EMBER_TRY(CheckCount("areas", c.areas, l.max_areas, kLimits.max_areas));
  EMBER_TRY(CheckCount("page runs", c.page_runs, l.max_page_runs, kLimits.max_page_runs));
  EMBER_TRY(CheckCount("files", c.files, l.max_files, kLimits.max_files));
  EMBER_TRY(CheckCount("interval timers", c.itimers, l.max_timers, kLimits.max_timers));
  EMBER_TRY(CheckCount("POSIX timers", c.posix_timers, l.max_timers, kLimits.max_timers));
  EMBER_TRY(CheckCount("relocations", c.relocations, l.max_relocations, kLimits.max_relocations));
  EMBER_TRY(
      CheckCount("stored pages", c.stored_pages, l.max_stored_pages, kLimits.max_stored_pages));
  EMBER_TRY(CheckCount("working-set pages", c.working_set_pages, l.max_working_set_pages,
                       kLimits.max_working_set_pages));
  if (c.threads == 0) return Corrupt("the image has no threads");
  return Ok();
}

// Sections in table order, aligned, disjoint, each of the size its count implies, the last one
// ending where the file does.
Status CheckSections(const FileHeader& h) {
  const ImageCounts& c = h.counts;
  uint64_t end = sizeof(FileHeader);
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    const SectionEntry& s = h.sections[i];
    const auto kind = static_cast<SectionKind>(i);
    const std::string_view name = SectionName(kind);
    if (s.kind != i) return Corrupt(fmt::format("section table entry {} has kind {}", i, s.kind));
    const bool mapped = kind == SectionKind::kMetadata || kind == SectionKind::kPageData;
    if (s.offset % (mapped ? kPageSize : 8) != 0) {
      return Corrupt(fmt::format("the {} section at offset {} is misaligned", name, s.offset));
    }
    if (s.offset < end || s.offset > h.file_size || s.size > h.file_size - s.offset) {
      return Corrupt(fmt::format(
          "the {} section ({} bytes at offset {}) overlaps the one before it or lies outside "
          "the {}-byte file",
          name, s.size, s.offset, h.file_size));
    }
    end = s.offset + s.size;
  }
  if (end != h.file_size) {
    return Corrupt(fmt::format("the sections end at {}, the file at {}", end, h.file_size));
  }
  auto expect = [](SectionKind kind, uint64_t size, uint64_t expected) -> Status {
    if (size == expected) return Ok();
    return Corrupt(fmt::format("the {} section is {} bytes, its count implies {}",
                               SectionName(kind), size, expected));
  };
  EMBER_TRY(expect(SectionKind::kCompat, Section(h, SectionKind::kCompat).size,
                   sizeof(CompatRecordView)));
  EMBER_TRY(expect(SectionKind::kRelocations, Section(h, SectionKind::kRelocations).size,
                   c.relocations * 8));
  EMBER_TRY(expect(SectionKind::kPageData, Section(h, SectionKind::kPageData).size,
                   c.stored_pages * kPageSize));
  EMBER_TRY(expect(SectionKind::kWorkingSet, Section(h, SectionKind::kWorkingSet).size,
                   c.working_set_pages * 8));
  const uint64_t metadata = Section(h, SectionKind::kMetadata).size;
  const uint64_t max_metadata = std::min(h.limits.max_metadata_bytes, kLimits.max_metadata_bytes);
  if (metadata < sizeof(ProcessRecord) || metadata > max_metadata || metadata % 8 != 0) {
    return Corrupt(fmt::format("the metadata section is {} bytes (from {} to {}, a multiple of 8)",
                               metadata, sizeof(ProcessRecord), max_metadata));
  }
  return Ok();
}

}  // namespace

Error ChecksumMismatch(std::string_view section, uint64_t stored, uint64_t computed) {
  return Error(
      ErrorCode::kCorrupt,
      fmt::format("checksum mismatch in the {} section (stored {:#018x}, computed {:#018x})",
                  section, stored, computed));
}

Result<FileHeader> ReadHeader(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno("fstat");
  if (!S_ISREG(st.st_mode)) return Corrupt("not an ember snapshot (not a regular file)");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  FileHeader h{};
  const size_t got = std::min<uint64_t>(file_size, sizeof h);
  EMBER_TRY(PreadExactly(fd, &h, got, 0, "header"));
  if (std::memcmp(h.magic, kImageMagic, std::min(got, sizeof h.magic)) != 0) {
    return Corrupt("not an ember snapshot (bad magic)");
  }
  // The version decides the header's layout, so it is checked before anything else in it.
  if (got >= offsetof(FileHeader, header_size)) {
    if (h.format_version > kFormatVersion) {
      return Fail(ErrorCode::kUnsupported,
                  fmt::format("snapshot format version {} is newer than this ember reads "
                              "(version {}); take the snapshot again with this ember",
                              h.format_version, kFormatVersion));
    }
    if (h.format_version == 0) return Corrupt("snapshot format version 0 does not exist");
    // Records change layout between versions (format.h, kFormatVersion) and the reader maps them
    // as they are: an older image is refused, not misread.
    if (h.format_version < kFormatVersion) {
      return Fail(ErrorCode::kUnsupported,
                  fmt::format("snapshot format version {} is older than this ember reads "
                              "(version {}); take the snapshot again with this ember",
                              h.format_version, kFormatVersion));
    }
  }
  if (got < sizeof h) {
    return Corrupt(fmt::format("truncated: the file is {} bytes, shorter than the {}-byte header",
                               file_size, sizeof h));
  }
  if (h.header_size != sizeof h) {
    return Corrupt(fmt::format("header size {} (version {} headers are {} bytes)", h.header_size,
                               kFormatVersion, sizeof h));
  }
  if (uint64_t computed = HeaderChecksum(h); computed != h.header_checksum) {
    return Corrupt(fmt::format("header checksum mismatch (stored {:#018x}, computed {:#018x})",
                               h.header_checksum, computed));
  }
  if (file_size < h.file_size) {
    return Corrupt(fmt::format("truncated: the header says {} bytes, the file has {}", h.file_size,
                               file_size));
  }
  if (file_size > h.file_size) {
    return Corrupt(fmt::format("{} bytes beyond the {} the header describes",
                               file_size - h.file_size, h.file_size));
  }
  if (h.page_size != kPageSize || h.section_count != kSectionCount) {
    return Corrupt(fmt::format("page size {} and {} sections (expected {} and {})", h.page_size,
                               h.section_count, kPageSize, kSectionCount));
  }
  EMBER_TRY(CheckLimits(h));
  EMBER_TRY(CheckSections(h));
  return h;
}

Result<std::vector<uint8_t>> ReadSection(int fd, const FileHeader& header, SectionKind kind) {
  const SectionEntry& s = Section(header, kind);
  const std::string what = fmt::format("{} section", SectionName(kind));
  std::vector<uint8_t> bytes(s.size);
  EMBER_TRY(PreadExactly(fd, bytes.data(), bytes.size(), s.offset, what));
  if (uint64_t computed = SectionChecksum(bytes.data(), bytes.size()); computed != s.checksum) {
    return Fail(ChecksumMismatch(SectionName(kind), s.checksum, computed));
  }
  return bytes;
}

Result<std::vector<uint64_t>> ReadWords(int fd, const FileHeader& header, SectionKind kind) {
  EMBER_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadSection(fd, header, kind));
  std::vector<uint64_t> words(bytes.size() / 8);
  if (!words.empty()) std::memcpy(words.data(), bytes.data(), words.size() * 8);
  return words;
}

}  // namespace ember::snapshot
