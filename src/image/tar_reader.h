// Opening tar archives (image tarballs and their layers) with libarchive. Only tar formats and
// the compressions images use are enabled: support_*_all would also link xar (libxml2, ICU) and
// other readers into every ember command, costing ~1.5 ms of dynamic loading per `ember run`.
#pragma once

#include <archive.h>

#include <memory>
#include <string>

#include "base/error.h"

namespace ember::image {

struct ArchiveCloser {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveCloser>;

// A reader for a tar file: plain, gzip, bzip2, xz/lzma or zstd. The error names the path.
Result<ArchivePtr> OpenTar(const std::string& path);

}  // namespace ember::image
