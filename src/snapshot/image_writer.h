// Writing snapshot images (format.h). Every write is atomic: a temp file in the target's
// directory, written, fsync'ed, renamed over the target, then the directory fsync'ed; on any
// failure the temp file is removed and the target is untouched. Instances that have the old file
// mapped keep it (rename replaces the name, not the inode), which is what lets the working-set
// recorder rewrite an image that running instances were restored from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/error.h"
#include "snapshot/process_state.h"

namespace ember::snapshot {

Status WriteImage(const ProcessState& state, const std::string& path, mode_t mode = 0644);

// The image as bytes (tests, fuzzing seeds). Holds every page twice; WriteImage does not.
Result<std::string> EncodeImage(const ProcessState& state);

// Replaces only the working-set section of the image at `path` (ProcessState::working_set:
// page-aligned addresses, in the order they should be prefetched). The image is validated first:
// a corrupt image is never rewritten. Everything before the section is copied unchanged
// (copy_file_range), so the page data is not read through user space.
Status RewriteWorkingSet(const std::string& path, std::span<const uint64_t> pages);

// Recomputes every section checksum and the header checksum of an image in memory, for tests and
// the fuzzer that damage a structure on purpose and want the reader's structural checks (not the
// checksums) to catch it. Fails (kCorrupt) when the header or section table is unusable.
Status RestampChecksums(std::span<uint8_t> image);

}  // namespace ember::snapshot
