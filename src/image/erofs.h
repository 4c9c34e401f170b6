// Packing a directory into an uncompressed EROFS file, and the content hash that names blobs.
//
// Uncompressed on purpose: the file's pages are then the page-cache pages every sandbox maps,
// shared across all mounts of the image. Per-file mtimes are kept (Python validates .pyc files
// against their source's mtime; a clamped mtime would make every import recompile). For the
// same input tree the output is byte-identical: the UUID is fixed, and the build time that
// mkfs.erofs stamps into the superblock is reset to 0 afterwards (with the superblock's crc32c
// recomputed), so importing the same content twice yields one blob.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::image {

// The EROFS superblock, as far as ember reads or rewrites it (little-endian, at byte 1024).
inline constexpr uint64_t kErofsSuperOffset = 1024;
inline constexpr uint32_t kErofsMagic = 0xE0F5E1E2;

// mkfs.erofs `source_dir` into `out`; `exclude` are paths relative to source_dir left out.
Status PackErofs(const std::string& source_dir, const std::string& out,
                 const std::vector<std::string>& exclude = {});

// Checks the magic and rewrites build_time/build_time_nsec to 0, fixing the checksum.
Status NormalizeErofsSuperblock(const std::string& path);

// crc32c as the EROFS superblock uses it (seed ~0, no final inversion).
uint32_t ErofsCrc32c(uint32_t seed, const void* data, size_t size);

// XXH3-128 of the file's bytes as 32 lower-case hex digits.
Result<std::string> HashFile(const std::string& path);

}  // namespace ember::image
