#include "image/tar_reader.h"

namespace ember::image {

Result<ArchivePtr> OpenTar(const std::string& path) {
  ArchivePtr a(archive_read_new());
  if (!a) return Fail(ErrorCode::kResourceExhausted, "archive_read_new failed");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_lzma(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return Fail(ErrorCode::kInvalidArgument, "open " + path + ": " + archive_error_string(a.get()) +
                                                 " (expected a tar archive or a directory)");
  }
  return a;
}

}  // namespace ember::image
