// Keeps `ember`'s static link of libarchive to the one tar writer that `ember deploy` uses
// (PackBundle's pax writer).
//
// The pax writer reports an entry of an unsupported type (socket, fifo, ...) through a libarchive
// helper, __archive_write_entry_filetype_unsupported, which lives in archive_write_set_format.o.
// That object also holds archive_write_set_format(), which references every writer libarchive has;
// the xar writer then needs libxml2 and the 7zip writer more, none of which ember links (each
// shared library costs every start: see CMakeLists.txt). Defining the helper here satisfies the pax
// writer without pulling that object in. It does what libarchive 3.6's does (the caller returns
// ARCHIVE_FAILED); PackBundle refuses such entries before they reach the writer anyway.
#include <archive.h>
#include <archive_entry.h>

#include <cerrno>

// NOLINTNEXTLINE(bugprone-reserved-identifier): the name is libarchive's.
extern "C" void __archive_write_entry_filetype_unsupported(struct archive* a,
                                                           struct archive_entry* entry,
                                                           const char* format) {
  archive_set_error(a, EILSEQ, "%s: %s format cannot archive this file type",
                    archive_entry_pathname(entry), format);
}
