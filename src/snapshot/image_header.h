// The first step of reading an image (format.h): the header and section table, checked against
// the file's real size and the reader's limits before any section is touched, and the small
// sections read and checksum-verified. Internal to the reader; ReadWorkingSet uses it alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "snapshot/format.h"

namespace ember::snapshot {

// Errors are kCorrupt ("not an ember snapshot" for a foreign file, "truncated: ..." naming the
// expected and actual sizes, a count over a limit naming both, a checksum mismatch naming the
// header), or kUnsupported for another format version, newer or older (naming both versions).
// Messages do not name the file; the caller adds it.
Result<FileHeader> ReadHeader(int fd);

// The bytes of a section that is read whole (compat, relocations, working set), verified against
// its checksum ("checksum mismatch in the relocations section").
Result<std::vector<uint8_t>> ReadSection(int fd, const FileHeader& header, SectionKind kind);

// Relocations and working set as 64-bit words, read and verified.
Result<std::vector<uint64_t>> ReadWords(int fd, const FileHeader& header, SectionKind kind);

inline const SectionEntry& Section(const FileHeader& header, SectionKind kind) {
  return header.sections[static_cast<size_t>(kind)];
}

// An error of the form "checksum mismatch in the <name> section (stored X, computed Y)".
Error ChecksumMismatch(std::string_view section, uint64_t stored, uint64_t computed);

}  // namespace ember::snapshot
