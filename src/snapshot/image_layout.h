// Planning a snapshot image (format.h): a ProcessState becomes the bytes of every section but the
// page data, plus where each area's pages go. Pure: no files. The writer (image_writer.h) then
// copies the page data straight from the ProcessState, one write per area, so the pages are
// never held twice in memory.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "snapshot/format.h"
#include "snapshot/process_state.h"

namespace ember::snapshot {

struct ImageLayout {
  FileHeader header{};  // complete: offsets, sizes, counts, every checksum
  CompatRecordView compat{};
  std::vector<uint64_t> relocations;
  std::vector<uint8_t> metadata;
  std::vector<uint64_t> working_set;
  // Per area of the ProcessState: the file offset of its first stored page (0 when it has none).
  // An area's stored pages are contiguous in the file, in page order, as in MemoryArea::page_data.
  std::vector<uint64_t> area_page_offsets;
};

// Fails with kInvalidArgument naming the thread/area/file when the state breaks a rule of the
// format (unsorted or out-of-range pages, overlapping areas, a path with a NUL, no threads) or a
// limit of kLimits.
Result<ImageLayout> PlanImage(const ProcessState& state);

// XXH3_64bits, the checksum of every section.
uint64_t SectionChecksum(const void* data, size_t size);
// XXH3_64bits of the header with header_checksum taken as 0.
uint64_t HeaderChecksum(const FileHeader& header);

// Lays out the sections of an image whose metadata, relocation and working-set sizes are known,
// in file order (format.h), and returns the file size.
uint64_t PlaceSections(FileHeader* header, uint64_t relocations_bytes, uint64_t metadata_bytes,
                       uint64_t page_data_bytes, uint64_t working_set_bytes);

}  // namespace ember::snapshot
