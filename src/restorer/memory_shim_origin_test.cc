// The memory shim with what the restorer tells it (MemoryShimConfig's ranges and FileOrigin
// areas): image pages restored over a private file mapping behave as that file mapping did
// (DONTNEED brings the file back, FREE is refused), and only the given ranges are watched.
// Helpers and the forked-child scheme: memory_shim_test_support.h.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "restorer/memory_shim.h"
#include "restorer/memory_shim_test_support.h"

namespace ember::restorer::shim_test {
namespace {

constexpr uint64_t kOriginSalt = 0x1111;

// A named file of pattern pages (salted): FileOrigin needs a path the shim can open.
struct NamedPatternFile {
  std::string path;
  explicit NamedPatternFile(size_t pages, uint64_t salt) {
    char name[] = "/tmp/ember-shim-origin-XXXXXX";
    const int fd = mkstemp(name);
    path = name;
    std::string data(pages * kPage, '\0');
    for (size_t p = 0; p < pages; ++p) {
      for (size_t w = 0; w < kPage / 8; ++w) {
        const uint64_t v = Pattern(p, w) ^ salt;
        std::memcpy(&data[p * kPage + w * 8], &v, 8);
      }
    }
    if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      path.clear();
    }
    if (fd >= 0) close(fd);
  }
  ~NamedPatternFile() {
    if (!path.empty()) unlink(path.c_str());
  }
};

// As the restorer maps a file-private area with stored pages: the file, then image pages over
// pages [1, 3). Returns the area (4 pages) or null.
char* MapLikeTheRestorer(const NamedPatternFile& original, const PatternFile& image) {
  const int fd = open(original.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* area = mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  if (area == MAP_FAILED) return nullptr;
  char* p = static_cast<char*>(area);
  if (mmap(p + kPage, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, image.fd,
           static_cast<off_t>(kPage)) == MAP_FAILED) {
    return nullptr;
  }
  return p;
}

// The shim over MapLikeTheRestorer's area at p, as the restorer installs it: pages [1, 3) from
// the image, all four formerly `original`'s. The shim keeps pointers to these arrays, so this
// lives as long as the shim is used.
struct FormerFileShim {
  AddressRange ranges[1];
  FileOrigin origins[1];
  int Install(char* p, const NamedPatternFile& original, const PatternFile& image) {
    const auto start = reinterpret_cast<uint64_t>(p);
    ranges[0] = {start + kPage, start + 3 * kPage};
    origins[0] = {start, start + 4 * kPage, 0, original.path.c_str()};
    MemoryShimConfig config = image.Config();
    config.image_ranges = ranges;
    config.image_range_count = 1;
    config.file_origins = origins;
    config.file_origin_count = 1;
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return InstallMemoryShim(config);
  }
};

TEST(MemoryShimOrigin, DontneedOnFormerlyFileBackedPagesBringsBackTheFile) {
  NamedPatternFile original(4, kOriginSalt);
  PatternFile image(4);
  ASSERT_FALSE(original.path.empty());
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = MapLikeTheRestorer(original, image);
    CHECK_IN_CHILD(c, p != nullptr);
    if (p == nullptr) return;
    FormerFileShim shim;
    CHECK_IN_CHILD(c, shim.Install(p, original, image) == 0);
    CHECK_IN_CHILD(c, PageIs(p + kPage, 1) && PageIs(p + 2 * kPage, 2));
    p[3 * kPage] = 9;  // the file's own private copy, outside the image: the kernel's business
    CHECK_IN_CHILD(c, madvise(p, 4 * kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 1);
    for (size_t i = 0; i < 4; ++i) {
      c.Expect(PageIs(p + i * kPage, i, kOriginSalt), __LINE__, "page " + std::to_string(i));
    }
    p[kPage] = 7;  // writable and private again
    CHECK_IN_CHILD(c, p[kPage] == 7 && PermissionsAt(p + kPage) == "rw-p");
  }));
}

TEST(MemoryShimOrigin, FreeIsRefusedAndMremapKeepsTheFileBehind) {
  NamedPatternFile original(4, kOriginSalt);
  PatternFile image(4);
  ASSERT_FALSE(original.path.empty());
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = MapLikeTheRestorer(original, image);
    CHECK_IN_CHILD(c, p != nullptr);
    if (p == nullptr) return;
    FormerFileShim shim;
    CHECK_IN_CHILD(c, shim.Install(p, original, image) == 0);
    errno = 0;
    CHECK_IN_CHILD(c, madvise(p + kPage, kPage, MADV_FREE) == -1 && errno == EINVAL);
    CHECK_IN_CHILD(c, PageIs(p + kPage, 1));
    // Page 2 (image bytes) moved and grown by one page: the new page is the file's page 3, as
    // growing the original private file mapping would have given.
    void* q = mremap(p + 2 * kPage, kPage, 2 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g, 2));
    CHECK_IN_CHILD(c, PageIs(g + kPage, 3, kOriginSalt));
    // No longer image memory: DONTNEED gives the file's page 2.
    CHECK_IN_CHILD(c, madvise(g, kPage, MADV_DONTNEED) == 0 && PageIs(g, 2, kOriginSalt));
  }));
}

TEST(MemoryShimOrigin, OnlyTheGivenRangesAreWatched) {
  PatternFile image(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = image.Map(4);
    CHECK_IN_CHILD(c, p != nullptr);
    if (p == nullptr) return;
    const auto start = reinterpret_cast<uint64_t>(p);
    // Pages 0 and 1 only: the caller's word, not /proc/self/maps.
    const AddressRange ranges[] = {{start, start + 2 * kPage}};
    MemoryShimConfig config = image.Config();
    config.image_ranges = ranges;
    config.image_range_count = 1;
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    CHECK_IN_CHILD(c, InstallMemoryShim(config) == 0);
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 1);
    CHECK_IN_CHILD(c, madvise(p + 3 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == 1 && PageIs(p + 3 * kPage, 3));
  }));
}

TEST(MemoryShimOrigin, NoGivenRangeIsRefused) {
  PatternFile image(1);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    const AddressRange none[1] = {};
    MemoryShimConfig config = image.Config();
    config.image_ranges = none;
    config.image_range_count = 0;
    CHECK_IN_CHILD(c, InstallMemoryShim(config) == -ENOENT);
  }));
}

}  // namespace
}  // namespace ember::restorer::shim_test
