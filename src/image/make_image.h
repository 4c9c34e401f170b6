// The two ways an image comes to be — import (an archive or a directory) and build (a recipe) —
// each as one call: stage in <data-dir>/tmp, pack to EROFS, commit to the store. On any failure
// the staging dir is removed, and nothing was committed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/build.h"
#include "image/store.h"

namespace ember::image {

struct ImportOptions {
  std::string name;    // "" = derive from the source
  bool force = false;  // replace an existing image of that name
};
Result<Store::Committed> ImportImage(Store& store, const std::string& source,
                                     const ImportOptions& options, const ProgressFn& progress);

struct BuildOptions {
  std::string name;  // "" = the recipe's name
  bool force = false;
  std::vector<std::string> extra_packages;
};
Result<Store::Committed> BuildImage(Store& store, const std::string& recipe_name,
                                    const BuildOptions& options, const ProgressFn& progress);

// Entries below `dir` (not following symlinks, not counting `dir`), and the device nodes among
// them as paths relative to `dir`: sandboxes get their own /dev, so images never carry devices.
struct TreeScan {
  uint64_t entries = 0;
  std::vector<std::string> devices;
};
Result<TreeScan> ScanTree(const std::string& dir);

}  // namespace ember::image
