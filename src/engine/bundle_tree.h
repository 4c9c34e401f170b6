// The daemon's side of a bundle, before it becomes a stored function: a pre-scan of the uploaded
// tar (limits and entry types, from the headers, before anything is written) and the normalization
// of the unpacked tree. The sandbox sees the code as an unmapped user ("nobody"), so every file
// must be world-readable: directories become 0755, files 0644 or, if any execute bit was set, 0755;
// set-id bits, foreign owners and extended attributes (file capabilities, ACLs) are dropped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"

namespace ember::engine {

struct BundleTree {
  std::string digest;  // XXH3-128 of the tree (paths, types, modes, link targets, contents), hex
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

// "a fifo", "a socket", "a character device", ...: what a bundle cannot hold, for errors.
const char* ModeTypeName(mode_t mode);

// Reads every header of the tar at `path`: refuses entries other than files, directories, symlinks
// and hardlinks, and bundles over kMaxBundleEntries entries or kMaxBundleBytes of data.
Status ScanBundleTar(const std::string& path);

// Normalizes the tree under `dir` (see above), owner the calling process, and digests it. Never
// follows a symlink; refuses fifos, sockets and devices; enforces the same limits.
Result<BundleTree> NormalizeBundleTree(const std::string& dir);

}  // namespace ember::engine
