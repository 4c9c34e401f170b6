#include "snapshot/image_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "base/fs.h"
#include "base/units.h"
#include "snapshot/format.h"
#include "snapshot/image_layout.h"
#include "snapshot/image_reader.h"

namespace ember::snapshot {
namespace {

constexpr size_t Index(SectionKind kind) { return static_cast<size_t>(kind); }

// A file written under a temp name beside its target and renamed over it by Commit(); removed
// if it is never committed.
class AtomicFile {
 public:
  static Result<AtomicFile> Create(const std::string& path, mode_t mode) {
    AtomicFile f;
    f.path_ = path;
    f.temp_ = fmt::format("{}.tmp.{}.{}", path, ::getpid(), RandomHex());
    EMBER_ASSIGN_OR_RETURN(f.fd_, OpenFile(f.temp_, O_RDWR | O_CREAT | O_EXCL, mode));
    return f;
  }
  AtomicFile() = default;
  AtomicFile(AtomicFile&& o) noexcept
      : path_(std::move(o.path_)), temp_(std::exchange(o.temp_, {})), fd_(std::move(o.fd_)) {}
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile() {
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }

  int fd() const { return fd_.get(); }
  const std::string& temp() const { return temp_; }

  Status WriteAt(uint64_t offset, const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
      ssize_t n = ::pwrite(fd_.get(), p, size, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return FailErrno(fmt::format("write {} bytes at offset {} of {}", size, offset, temp_));
      }
      p += n;
      offset += static_cast<uint64_t>(n);
      size -= static_cast<size_t>(n);
    }
    return Ok();
  }

  Status Commit() {
    if (::fsync(fd_.get()) != 0) return FailErrno("fsync " + temp_);
    fd_.reset();
    EMBER_TRY(RenameDurably(temp_, path_));
    temp_.clear();
    return Ok();
  }

 private:
  std::string path_, temp_;
  UniqueFd fd_;
};

using PieceFn = std::function<Status(uint64_t offset, const void* data, size_t size)>;

// Every byte range of the image but the zero padding between sections.
Status ForEachPiece(const ImageLayout& l, const ProcessState& s, const PieceFn& fn) {
  auto at = [&l](SectionKind k) { return l.header.sections[Index(k)].offset; };
  EMBER_TRY(fn(0, &l.header, sizeof l.header));
  EMBER_TRY(fn(at(SectionKind::kCompat), &l.compat, sizeof l.compat));
  EMBER_TRY(fn(at(SectionKind::kRelocations), l.relocations.data(), l.relocations.size() * 8));
  EMBER_TRY(fn(at(SectionKind::kMetadata), l.metadata.data(), l.metadata.size()));
  for (size_t i = 0; i < s.areas.size(); ++i) {
    const auto& data = s.areas[i].page_data;
    if (!data.empty()) EMBER_TRY(fn(l.area_page_offsets[i], data.data(), data.size()));
  }
  return fn(at(SectionKind::kWorkingSet), l.working_set.data(), l.working_set.size() * 8);
}

Status CopyRange(int from, int to, uint64_t size, const std::string& what) {
  loff_t in = 0, out = 0;
  while (size > 0) {
    ssize_t n = ::copy_file_range(from, &in, to, &out, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
      break;  // a filesystem without it: copy through a buffer below
    }
    if (n < 0) return FailErrno("copy_file_range " + what);
    if (n == 0) return Fail(ErrorCode::kCorrupt, what + ": source ended early");
    size -= static_cast<uint64_t>(n);
  }
  std::vector<uint8_t> buf(1 << 20);
  while (size > 0) {
    ssize_t n = ::pread(from, buf.data(), std::min<uint64_t>(size, buf.size()), in);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? FailErrno("read " + what) : Fail(ErrorCode::kCorrupt, what);
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::pwrite(to, buf.data() + done, static_cast<size_t>(n - done), out);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return FailErrno("write " + what);
      done += w;
      out += w;
    }
    in += n;
    size -= static_cast<uint64_t>(n);
  }
  return Ok();
}

}  // namespace

Status WriteImage(const ProcessState& state, const std::string& path, mode_t mode) {
  const std::string what = "write snapshot image " + path;
  EMBER_ASSIGN_OR_RETURN(ImageLayout layout, PlanImage(state).map_error([&](Error e) {
    return std::move(e).Context(what);
  }));
  auto file = AtomicFile::Create(path, mode);
  if (!file) return Fail(std::move(file).error().Context(what));
  // The padding between sections stays a hole (reads as zeros, takes no space).
  if (::ftruncate(file->fd(), static_cast<off_t>(layout.header.file_size)) != 0) {
    return FailErrno(
        fmt::format("{}: truncate {} to {} bytes", what, file->temp(), layout.header.file_size));
  }
  EMBER_TRY_CTX(ForEachPiece(layout, state,
                             [&file](uint64_t offset, const void* data, size_t size) {
                               return file->WriteAt(offset, data, size);
                             }),
                what);
  EMBER_TRY_CTX(file->Commit(), what);
  return Ok();
}

Result<std::string> EncodeImage(const ProcessState& state) {
  EMBER_ASSIGN_OR_RETURN(ImageLayout layout, PlanImage(state));
  std::string out(layout.header.file_size, '\0');
  EMBER_TRY(ForEachPiece(layout, state, [&out](uint64_t offset, const void* data, size_t size) {
    if (size != 0) std::memcpy(out.data() + offset, data, size);
    return Ok();
  }));
  return out;
}

Status RewriteWorkingSet(const std::string& path, std::span<const uint64_t> pages) {
  const std::string what = "rewrite the working set of snapshot image " + path;
  if (pages.size() > kLimits.max_working_set_pages) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: {} pages (limit {})", what, pages.size(), kLimits.max_working_set_pages));
  }
  for (uint64_t page : pages) {
    if (page % kPageSize != 0) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("{}: address {:#x} is not page aligned", what, page));
    }
  }
  auto image = ImageReader::Open(path);
  if (!image) return Fail(std::move(image).error().Context(what));
  struct stat st {};
  if (::fstat(image->fd(), &st) != 0) return FailErrno(what + ": fstat");

  FileHeader header = image->header();
  SectionEntry& ws = header.sections[Index(SectionKind::kWorkingSet)];
  auto file = AtomicFile::Create(path, st.st_mode & 07777);
  if (!file) return Fail(std::move(file).error().Context(what));
  EMBER_TRY_CTX(CopyRange(image->fd(), file->fd(), ws.offset, path), what);
  ws.size = pages.size() * 8;
  ws.checksum = SectionChecksum(pages.data(), pages.size() * 8);
  header.counts.working_set_pages = pages.size();
  header.file_size = ws.offset + ws.size;
  header.header_checksum = HeaderChecksum(header);
  EMBER_TRY_CTX(file->WriteAt(ws.offset, pages.data(), pages.size() * 8), what);
  EMBER_TRY_CTX(file->WriteAt(0, &header, sizeof header), what);
  EMBER_TRY_CTX(file->Commit(), what);
  return Ok();
}

Status RestampChecksums(std::span<uint8_t> image) {
  FileHeader h;
  if (image.size() < sizeof h) return Fail(ErrorCode::kCorrupt, "restamp: no room for a header");
  std::memcpy(&h, image.data(), sizeof h);
  for (auto& section : h.sections) {
    if (section.offset > image.size() || section.size > image.size() - section.offset) {
      return Fail(ErrorCode::kCorrupt, "restamp: a section lies outside the image");
    }
    section.checksum = SectionChecksum(image.data() + section.offset, section.size);
  }
  h.header_checksum = HeaderChecksum(h);
  std::memcpy(image.data(), &h, sizeof h);
  return Ok();
}

}  // namespace ember::snapshot
