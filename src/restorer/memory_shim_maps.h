// Reading /proc/self/maps for the memory shim (memory_shim.h) without libc or allocation: the
// shim's SIGSYS handler runs in the restored process, on whatever stack the trapped thread had,
// so everything here lives in a small caller-provided struct and is read with raw syscalls.
//
// Two ways in: the PROCMAP_QUERY ioctl (Linux 6.11+) returns one binary record per mapping,
// starting at a given address, and costs ~4 us here for open + query + close; reading the text
// makes the kernel print every mapping up to the one asked about, paths included (~20-25 us for
// 2 KiB). The text is the fallback for older kernels (Debian 12's 6.1). Of the text only the
// fields before the path are parsed (range, permissions, device, inode); a line whose path
// does not fit the buffer is parsed from its beginning and the rest of it is skipped.
#pragma once

#include <stdint.h>

namespace ember::restorer {

// The device numbers /proc/<pid>/maps prints ("fe:01") for a stat() st_dev value: the kernel's
// new_encode_dev layout, which is what stat(2) returns and glibc's major()/minor() decode.
inline uint32_t DevMajor(uint64_t st_dev) {
  return static_cast<uint32_t>(((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & ~0xfffULL));
}
inline uint32_t DevMinor(uint64_t st_dev) {
  return static_cast<uint32_t>((st_dev & 0xff) | ((st_dev >> 12) & ~0xffULL));
}

struct VmaRecord {
  uint64_t start;
  uint64_t end;
  int prot;  // PROT_READ/WRITE/EXEC as the permission column shows them
  bool shared;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint64_t inode;
  bool anonymous;  // no file and no name such as [heap] or [vdso]
};

// Parses one maps line (without its newline; it may be cut off inside the path). Returns false
// if the fields before the path are malformed.
bool ParseMapsLine(const char* line, unsigned long length, VmaRecord* out);

// Streams the records of a maps file from `fd` (owned by the caller). The buffer is small on
// purpose (see above); a maps line up to the inode is at most ~90 bytes.
struct MapsReader {
  static constexpr unsigned long kBufferSize = 2048;

  int fd;
  unsigned long begin = 0;  // unparsed bytes are buf[begin, end)
  unsigned long end = 0;
  bool eof = false;
  bool skipping = false;  // inside the overlong tail of a line that was already parsed
  long error = 0;         // -errno of a failed read, else 0
  char buf[kBufferSize];

  explicit MapsReader(int maps_fd) : fd(maps_fd) {}

  // The next record, or false at the end of the file or on a read error (then `error` is set).
  // Malformed lines are skipped.
  bool Next(VmaRecord* out);
};

// The mappings that overlap [begin, end) of an open maps file, in address order: through
// PROCMAP_QUERY, or by reading the text when the first ioctl is refused (ENOTTY: an older
// kernel, or a file that is not a maps file; EPERM: a seccomp policy without the request).
// `want_anonymous` fills VmaRecord::anonymous (in query mode that costs a second ioctl for each
// mapping without a file); otherwise it is false.
struct RangeWalker {
  int fd;
  uint64_t cursor;  // everything below is done
  uint64_t end;
  bool want_anonymous;
  int mode = 0;  // 0: not known yet, 1: query, 2: text
  long error = 0;
  MapsReader reader;

  RangeWalker(int maps_fd, uint64_t range_begin, uint64_t range_end, bool anonymous_wanted)
      : fd(maps_fd),
        cursor(range_begin),
        end(range_end),
        want_anonymous(anonymous_wanted),
        reader(maps_fd) {}

  // The next mapping, or false at the end or on an error (then `error` is -errno).
  bool Next(VmaRecord* out);
};

// With true, every RangeWalker reads the text, so tests cover the fallback on a kernel that has
// the ioctl.
void SetMapsTextOnlyForTesting(bool text_only);

// A part of a mapping of the image file, clipped to the range that was asked about.
struct ImagePiece {
  uint64_t start;
  uint64_t end;
  int prot;
};

// Finds the private mappings of the file (dev_major:dev_minor, inode) that overlap
// [begin, end), in address order, clipped to it. Writes at most `capacity` pieces and returns
// how many, or -errno (opening or reading `maps_path` failed). When it returns `capacity` there
// may be more: ask again from the last piece's end.
long FindImagePieces(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                     uint64_t begin, uint64_t end, ImagePiece* pieces, long capacity);

// What an mremap of [begin, end) needs to know: whether the range holds image-backed memory,
// and whether it is one run of private mappings that are each anonymous or the image, all with
// the same protection, without holes: what was a single anonymous mapping at checkpoint (as
// mremap requires) before conversions and advice split it. Returns 0 or -errno.
struct RangeSummary {
  bool has_image;
  bool one_anonymous_run;
  int prot;
};
long SummarizeRange(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                    uint64_t begin, uint64_t end, RangeSummary* out);

}  // namespace ember::restorer
