#include "restorer/memory_shim_maps.h"

#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/mman.h>

#include "restorer/syscall.h"

namespace ember::restorer {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses an unsigned number in `base` (16 or 10) at line[*pos]; false if there is no digit or
// it overflows 64 bits.
bool ParseNumber(const char* line, unsigned long length, unsigned long* pos, int base,
                 uint64_t* out) {
  uint64_t value = 0;
  unsigned long i = *pos;
  for (; i < length; ++i) {
    const int digit = HexDigit(line[i]);
    if (digit < 0 || digit >= base) break;
    if (value > (~0ULL - static_cast<uint64_t>(digit)) / static_cast<uint64_t>(base)) {
      return false;
    }
    value = value * static_cast<uint64_t>(base) + static_cast<uint64_t>(digit);
  }
  if (i == *pos) return false;
  *pos = i;
  *out = value;
  return true;
}

bool Expect(const char* line, unsigned long length, unsigned long* pos, char c) {
  if (*pos >= length || line[*pos] != c) return false;
  ++*pos;
  return true;
}

void SkipSpaces(const char* line, unsigned long length, unsigned long* pos) {
  while (*pos < length && line[*pos] == ' ') ++*pos;
}

}  // namespace

bool ParseMapsLine(const char* line, unsigned long length, VmaRecord* out) {
  // "start-end perms offset major:minor inode   path"
  unsigned long pos = 0;
  uint64_t offset = 0, major = 0, minor = 0;
  if (!ParseNumber(line, length, &pos, 16, &out->start)) return false;
  if (!Expect(line, length, &pos, '-')) return false;
  if (!ParseNumber(line, length, &pos, 16, &out->end)) return false;
  if (!Expect(line, length, &pos, ' ')) return false;
  if (pos + 4 > length) return false;
  out->prot = (line[pos] == 'r' ? PROT_READ : 0) | (line[pos + 1] == 'w' ? PROT_WRITE : 0) |
              (line[pos + 2] == 'x' ? PROT_EXEC : 0);
  out->shared = line[pos + 3] == 's';
  pos += 4;
  SkipSpaces(line, length, &pos);
  if (!ParseNumber(line, length, &pos, 16, &offset)) return false;
  SkipSpaces(line, length, &pos);
  if (!ParseNumber(line, length, &pos, 16, &major)) return false;
  if (!Expect(line, length, &pos, ':')) return false;
  if (!ParseNumber(line, length, &pos, 16, &minor)) return false;
  SkipSpaces(line, length, &pos);
  if (!ParseNumber(line, length, &pos, 10, &out->inode)) return false;
  if (pos < length && line[pos] != ' ') return false;
  SkipSpaces(line, length, &pos);
  out->anonymous = out->inode == 0 && major == 0 && minor == 0 && pos == length;
  out->dev_major = static_cast<uint32_t>(major);
  out->dev_minor = static_cast<uint32_t>(minor);
  return out->start < out->end;
}

bool MapsReader::Next(VmaRecord* out) {
  for (;;) {
    // A complete line in the buffer?
    unsigned long newline = begin;
    while (newline < end && buf[newline] != '\n') ++newline;
    if (newline < end) {
      const unsigned long line_begin = begin;
      const bool was_skipping = skipping;
      begin = newline + 1;
      skipping = false;
      if (was_skipping) continue;
      if (ParseMapsLine(buf + line_begin, newline - line_begin, out)) return true;
      continue;
    }
    if (skipping) {
      begin = end = 0;  // drop the rest of an overlong line as it comes
    } else if (begin == 0 && end == kBufferSize) {
      // A line longer than the buffer: its fields are all here, the path is cut off.
      begin = end = 0;
      skipping = true;
      if (ParseMapsLine(buf, kBufferSize, out)) return true;
      continue;
    } else if (begin > 0) {
      // Move the partial line to the front (a byte loop: no libc, ranges may overlap).
      unsigned long n = 0;
      for (unsigned long i = begin; i < end; ++i) buf[n++] = buf[i];
      begin = 0;
      end = n;
    }
    if (eof) {
      // A last line without a newline.
      if (end > begin && !skipping) {
        const unsigned long line_begin = begin;
        begin = end;
        if (ParseMapsLine(buf + line_begin, end - line_begin, out)) return true;
      }
      return false;
    }
    const long got = RawSyscall(__NR_read, fd, reinterpret_cast<long>(buf + end),
                                static_cast<long>(kBufferSize - end));
    if (got == -EINTR) continue;
    if (IsError(got)) {
      error = got;
      return false;
    }
    if (got == 0) {
      eof = true;
    } else {
      end += static_cast<unsigned long>(got);
    }
  }
}

long FindImagePieces(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                     uint64_t begin, uint64_t end, ImagePiece* pieces, long capacity) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(maps_path), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  MapsReader reader(static_cast<int>(fd));
  VmaRecord vma;
  long count = 0;
  while (count < capacity && reader.Next(&vma)) {
    if (vma.start >= end) break;  // maps is sorted by address
    if (vma.end <= begin || vma.shared || vma.inode != inode || vma.dev_major != dev_major ||
        vma.dev_minor != dev_minor) {
      continue;
    }
    pieces[count].start = vma.start > begin ? vma.start : begin;
    pieces[count].end = vma.end < end ? vma.end : end;
    pieces[count].prot = vma.prot;
    ++count;
  }
  RawSyscall(__NR_close, fd);
  if (reader.error != 0) return reader.error;
  return count;
}

long SummarizeRange(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                    uint64_t begin, uint64_t end, RangeSummary* out) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(maps_path), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  MapsReader reader(static_cast<int>(fd));
  VmaRecord vma;
  *out = RangeSummary{false, true, -1};
  uint64_t covered = begin;  // [begin, covered) is accounted for
  while (reader.Next(&vma)) {
    if (vma.start >= end) break;
    if (vma.end <= begin) continue;
    const bool image = !vma.shared && vma.inode == inode && vma.dev_major == dev_major &&
                       vma.dev_minor == dev_minor;
    out->has_image = out->has_image || image;
    const bool joinable = image || (vma.anonymous && !vma.shared);
    if (!joinable || vma.start > covered || (out->prot >= 0 && vma.prot != out->prot)) {
      out->one_anonymous_run = false;
    }
    out->prot = vma.prot;
    covered = vma.end;
  }
  RawSyscall(__NR_close, fd);
  if (covered < end) out->one_anonymous_run = false;
  return reader.error;
}

}  // namespace ember::restorer
