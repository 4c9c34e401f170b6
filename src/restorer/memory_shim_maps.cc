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

namespace {

// PROCMAP_QUERY (include/uapi/linux/fs.h, 6.11); Debian 12's headers predate it.
struct ProcmapQuery {
  uint64_t size;
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start;
  uint64_t vma_end;
  uint64_t vma_flags;
  uint64_t vma_page_size;
  uint64_t vma_offset;
  uint64_t inode;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t vma_name_size;
  uint32_t build_id_size;
  uint64_t vma_name_addr;
  uint64_t build_id_addr;
};
static_assert(sizeof(ProcmapQuery) == 104);
constexpr unsigned long kProcmapQuery =
    (3UL << 30) | (sizeof(ProcmapQuery) << 16) | (0x66UL << 8) | 17;  // _IOWR('f', 17, ...)
constexpr uint64_t kVmaReadable = 0x01, kVmaWritable = 0x02, kVmaExecutable = 0x04,
                   kVmaShared = 0x08, kCoveringOrNextVma = 0x10;
constexpr int kModeUnknown = 0, kModeQuery = 1, kModeText = 2;

bool g_text_only = false;

long Query(int fd, uint64_t address, uint64_t flags, char* name, uint32_t name_size,
           ProcmapQuery* q) {
  *q = ProcmapQuery{};
  q->size = sizeof(ProcmapQuery);
  q->query_flags = flags;
  q->query_addr = address;
  q->vma_name_size = name_size;
  q->vma_name_addr = reinterpret_cast<uint64_t>(name);
  return RawSyscall(__NR_ioctl, fd, static_cast<long>(kProcmapQuery), reinterpret_cast<long>(q));
}

}  // namespace

void SetMapsTextOnlyForTesting(bool text_only) { g_text_only = text_only; }

bool RangeWalker::Next(VmaRecord* out) {
  if (cursor >= end) return false;
  if (mode != kModeText && !g_text_only) {
    ProcmapQuery q;
    const long r = Query(fd, cursor, kCoveringOrNextVma, nullptr, 0, &q);
    if (IsError(r) && r != -ENOENT && mode == kModeUnknown) {
      // ENOTTY: a kernel before 6.11, or not a maps file. EPERM and the like: a seccomp policy
      // that allows only some ioctl requests (the sandbox's strict one).
      mode = kModeText;
    } else if (r == -ENOENT) {
      return false;  // nothing at or above the cursor
    } else if (IsError(r)) {
      error = r;
      return false;
    } else {
      mode = kModeQuery;
      if (q.vma_start >= end) return false;
      out->start = q.vma_start;
      out->end = q.vma_end;
      out->prot = ((q.vma_flags & kVmaReadable) != 0 ? PROT_READ : 0) |
                  ((q.vma_flags & kVmaWritable) != 0 ? PROT_WRITE : 0) |
                  ((q.vma_flags & kVmaExecutable) != 0 ? PROT_EXEC : 0);
      out->shared = (q.vma_flags & kVmaShared) != 0;
      out->dev_major = q.dev_major;
      out->dev_minor = q.dev_minor;
      out->inode = q.inode;
      out->anonymous = false;
      if (want_anonymous && q.inode == 0 && q.dev_major == 0 && q.dev_minor == 0) {
        // No file; a name ([heap], [stack], [vdso], [anon:...]) makes it special. A name
        // longer than the buffer fails with ENAMETOOLONG: named all the same.
        char name[32];
        ProcmapQuery named;
        out->anonymous = Query(fd, q.vma_start, 0, name, sizeof(name), &named) == 0 &&
                         named.vma_start == q.vma_start && named.vma_name_size == 0;
      }
      cursor = q.vma_end;
      return true;
    }
  }
  mode = kModeText;
  while (reader.Next(out)) {
    if (out->start >= end) return false;  // maps is sorted by address
    if (out->end <= cursor) continue;
    if (!want_anonymous) out->anonymous = false;
    cursor = out->end;
    return true;
  }
  error = reader.error;
  return false;
}

long FindImagePieces(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                     uint64_t begin, uint64_t end, ImagePiece* pieces, long capacity) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(maps_path), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  RangeWalker walker(static_cast<int>(fd), begin, end, false);
  VmaRecord vma;
  long count = 0;
  while (count < capacity && walker.Next(&vma)) {
    if (vma.shared || vma.inode != inode || vma.dev_major != dev_major ||
        vma.dev_minor != dev_minor) {
      continue;
    }
    pieces[count].start = vma.start > begin ? vma.start : begin;
    pieces[count].end = vma.end < end ? vma.end : end;
    pieces[count].prot = vma.prot;
    ++count;
  }
  RawSyscall(__NR_close, fd);
  if (walker.error != 0) return walker.error;
  return count;
}

long SummarizeRange(const char* maps_path, uint32_t dev_major, uint32_t dev_minor, uint64_t inode,
                    uint64_t begin, uint64_t end, RangeSummary* out) {
  const long fd =
      RawSyscall(__NR_openat, AT_FDCWD, reinterpret_cast<long>(maps_path), O_RDONLY | O_CLOEXEC);
  if (IsError(fd)) return fd;
  RangeWalker walker(static_cast<int>(fd), begin, end, true);
  VmaRecord vma;
  *out = RangeSummary{false, true, -1};
  uint64_t covered = begin;  // [begin, covered) is accounted for
  while (walker.Next(&vma)) {
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
  return walker.error;
}

}  // namespace ember::restorer
