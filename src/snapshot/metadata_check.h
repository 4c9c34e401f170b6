// The proof that makes relocation safe: before the reader adds the base address to the fields the
// relocation table lists, CheckMetadata walks the records (still holding offsets) and shows that
//   * the table lists exactly the non-null RelPtr fields of the records, no other word;
//   * every pointer lands inside the metadata, aligned for its type, with its whole array or
//     string (NUL included) in bounds, and null only with a count of 0;
//   * the records holding pointers (process, threads, areas, files) are disjoint, and nothing a
//     pointer reaches overlaps them, so relocation changes no byte anyone reads as data;
//   * counts agree with the header, areas are sorted and disjoint, page runs lie in their area
//     and in the page data section, enum fields are in range, strings have no inner NUL, the
//     recorded clocks are within what a time namespace can show.
// After it passes, the restorer may follow every pointer and span without further checks.
#pragma once

#include <cstdint>
#include <span>

#include "base/error.h"
#include "snapshot/format.h"

namespace ember::snapshot {

// `metadata` starts at a page-aligned address (the mapping); `relocations` is the verified
// relocation section. Errors are kCorrupt and name the record ("area 3: ...").
Status CheckMetadata(std::span<const uint8_t> metadata, std::span<const uint64_t> relocations,
                     const FileHeader& header);

// Adds the address of `metadata` to every listed field. Only after CheckMetadata passed.
void Relocate(std::span<uint8_t> metadata, std::span<const uint64_t> relocations);

}  // namespace ember::snapshot
