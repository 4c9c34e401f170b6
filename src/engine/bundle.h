// Function bundles on the client side: `ember deploy DIR` packs DIR into an uncompressed tar with
// PackBundle and sends the bytes to the daemon, which unpacks them with FunctionStore::Stage.
//
// What goes into the tar:
//   * regular files, directories and symlinks (stored as links, never followed), paths relative to
//     DIR in sorted order, permission bits kept, owner 0:0 (the daemon owns the code anyway);
//   * hardlinked files are stored as separate files;
//   * skipped, at any depth: directories named `.git` and `__pycache__` (version control and
//     bytecode caches the read-only /function could not use) — nothing else is skipped;
//   * anything else (fifo, socket, device) is an error naming the path.
// The bundle's manifest is checked first (LoadBundleManifest), so a broken ember.toml or a missing
// handler is reported before anything is uploaded. The limits are the store's: at most
// kMaxBundleEntries entries and kMaxBundleBytes of file data.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace ember::engine {

inline constexpr uint64_t kMaxBundleBytes = 256ULL << 20;  // file data, unpacked
inline constexpr uint64_t kMaxBundleEntries = 10000;       // files, directories and symlinks
// The largest tar the daemon should accept for a deploy: the data plus a 512-byte header (and up
// to 511 bytes of padding) per entry, plus the end blocks.
inline constexpr uint64_t kMaxBundleTarBytes = kMaxBundleBytes + kMaxBundleEntries * 1024 + 20480;

// The tar bytes of the bundle in `dir`.
Result<std::string> PackBundle(const std::string& dir);

}  // namespace ember::engine
