// Unpacking tar streams (one plain rootfs tarball, or the ordered layers of a docker/OCI image)
// into a directory: every layer is planned first (layer_plan.h), and only when all entries are
// accepted is anything written (tree_writer.h). A refused archive therefore leaves the
// destination as it was. Compression (gzip, zstd, xz, bzip2, lz4, none) is detected by libarchive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace ember::image {

struct UnpackStats {
  uint32_t layers = 0;
  uint64_t entries = 0;  // entries in the final tree, not counting the root
};

// `layers` are tar files applied bottom first. `layered` turns whiteout handling on. `dest` must
// be an existing directory (normally empty).
Result<UnpackStats> UnpackLayers(const std::vector<std::string>& layers, bool layered,
                                 const std::string& dest);

}  // namespace ember::image
