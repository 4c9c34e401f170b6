#include "snapshot/image_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <cstring>
#include <memory>

#include "base/fs.h"
#include "snapshot/compat.h"
#include "snapshot/image_header.h"
#include "snapshot/image_layout.h"
#include "snapshot/metadata_check.h"

namespace ember::snapshot {
namespace {

tl::unexpected<Error> Corrupt(std::string message) {
  return Fail(ErrorCode::kCorrupt, std::move(message));
}

Result<CompatRecordView> ReadCompat(int fd, const FileHeader& header) {
  EMBER_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadSection(fd, header, SectionKind::kCompat));
  CompatRecordView view;
  std::memcpy(&view, bytes.data(), sizeof view);
  auto terminated = [](const char* field, size_t size) {
    return std::memchr(field, '\0', size) != nullptr;
  };
  if (!terminated(view.kernel_release, sizeof view.kernel_release) ||
      !terminated(view.glibc_version, sizeof view.glibc_version) ||
      !terminated(view.ember_version, sizeof view.ember_version)) {
    return Corrupt("compat record: a version string is not NUL-terminated");
  }
  return view;
}

Result<std::vector<uint64_t>> ReadWorkingSetSection(int fd, const FileHeader& header) {
  EMBER_ASSIGN_OR_RETURN(std::vector<uint64_t> pages,
                         ReadWords(fd, header, SectionKind::kWorkingSet));
  for (uint64_t page : pages) {
    if (page % kPageSize != 0) {
      return Corrupt(fmt::format("working set: address {:#x} is not page aligned", page));
    }
  }
  return pages;
}

}  // namespace

Result<ImageReader> ImageReader::Open(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd) return Fail(std::move(fd).error().Context("open snapshot image"));
  return Open(std::move(*fd), path);
}

Result<ImageReader> ImageReader::Open(UniqueFd fd, std::string name) {
  const std::string what = "snapshot image " + name;
  ImageReader image;
  image.fd_ = std::move(fd);
  image.name_ = std::move(name);
  const int f = image.fd_.get();
  auto result = [&]() -> Status {
    EMBER_ASSIGN_OR_RETURN(image.header_, ReadHeader(f));
    const FileHeader& h = image.header_;
    EMBER_ASSIGN_OR_RETURN(image.compat_, ReadCompat(f, h));
    EMBER_ASSIGN_OR_RETURN(std::vector<uint64_t> relocations,
                           ReadWords(f, h, SectionKind::kRelocations));
    EMBER_ASSIGN_OR_RETURN(image.working_set_, ReadWorkingSetSection(f, h));

    // MAP_PRIVATE: relocation writes go to private copies of the metadata pages, the file is
    // never modified. The header check proved the section lies inside the file.
    const SectionEntry& meta = Section(h, SectionKind::kMetadata);
    EMBER_ASSIGN_OR_RETURN(image.metadata_,
                           MappedRegion::Map(meta.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f,
                                             static_cast<off_t>(meta.offset)));
    std::span<uint8_t> bytes(image.metadata_.as<uint8_t>(), meta.size);
    if (uint64_t sum = SectionChecksum(bytes.data(), bytes.size()); sum != meta.checksum) {
      return Fail(ChecksumMismatch("metadata", meta.checksum, sum));
    }
    EMBER_TRY(CheckMetadata(bytes, relocations, h));
    Relocate(bytes, relocations);
    // Read-only from here: nothing may change a record the restorer trusts.
    if (::mprotect(bytes.data(), bytes.size(), PROT_READ) != 0) {
      return FailErrno("mprotect the relocated metadata");
    }
    return Ok();
  }();
  if (!result) return Fail(std::move(result).error().Context(what));
  return image;
}

Status ImageReader::VerifyPages() const {
  const std::string what = "verify the pages of snapshot image " + name_;
  const SectionEntry& section = Section(header_, SectionKind::kPageData);
  if (section.size == 0) {
    if (section.checksum != SectionChecksum(nullptr, 0)) {
      return Fail(ChecksumMismatch("page data", section.checksum, SectionChecksum(nullptr, 0))
                      .Context(what));
    }
    return Ok();
  }
  auto mapped = MappedRegion::Map(section.size, PROT_READ, MAP_PRIVATE, fd_.get(),
                                  static_cast<off_t>(section.offset));
  if (!mapped) return Fail(std::move(mapped).error().Context(what));
  const auto* pages = mapped->as<const uint8_t>();
  // Areas first: their checksums name the damaged area, the section's only says "somewhere".
  for (const AreaRecord& area : areas()) {
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                   &XXH3_freeState);
    if (!state) return Fail(ErrorCode::kResourceExhausted, what + ": XXH3_createState");
    XXH3_64bits_reset(state.get());
    for (const PageRunRecord& run : area.runs()) {
      XXH3_64bits_update(state.get(), pages + (run.file_offset - section.offset),
                         uint64_t{run.page_count} * kPageSize);
    }
    if (uint64_t sum = XXH3_64bits_digest(state.get()); sum != area.pages_checksum) {
      return Fail(
          ErrorCode::kCorrupt,
          fmt::format("{}: the stored pages of area {:#x}-{:#x} ({}) differ from "
                      "their checksum (stored {:#018x}, computed {:#018x})",
                      what, area.start, area.end, area.path.view(), area.pages_checksum, sum));
    }
  }
  if (uint64_t sum = SectionChecksum(pages, section.size); sum != section.checksum) {
    return Fail(ChecksumMismatch("page data", section.checksum, sum).Context(what));
  }
  return Ok();
}

Result<std::vector<uint64_t>> ReadWorkingSet(const std::string& path) {
  const std::string what = "read the working set of snapshot image " + path;
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd) return Fail(std::move(fd).error().Context(what));
  auto header = ReadHeader(fd->get());
  if (!header) return Fail(std::move(header).error().Context(what));
  auto pages = ReadWorkingSetSection(fd->get(), *header);
  if (!pages) return Fail(std::move(pages).error().Context(what));
  return pages;
}

}  // namespace ember::snapshot
