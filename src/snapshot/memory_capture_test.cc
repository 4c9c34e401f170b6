#include "snapshot/memory_capture.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

namespace ember::snapshot {
namespace {

Result<std::vector<MemoryArea>> Plan(const std::string& maps_text,
                                     std::map<uint64_t, proc::VmFlags> flags = {}) {
  auto maps = proc::ParseMaps(maps_text);
  EXPECT_TRUE(maps) << maps.error().ToString();
  return PlanAreas(*maps, flags);
}

TEST(PlanAreasTest, KindsOfATypicalProcess) {
  constexpr char kMaps[] =
      "55d8de51c000-55d8de51e000 r--p 00000000 fe:00 247134            /usr/bin/cat\n"
      "55d8ed0f8000-55d8ed119000 rw-p 00000000 00:00 0                 [heap]\n"
      "7ff85fb63000-7ff85fb85000 rw-p 00000000 00:00 0 \n"
      "7ff85fc0c000-7ff85fd62000 r-xp 00026000 fe:00 332835            /usr/lib/libc.so.6\n"
      "7ff85fdcb000-7ff85fdd2000 r--s 00000000 fe:00 332280            /usr/lib/gconv.cache\n"
      "7ff85fdd5000-7ff85fdd9000 r--p 00000000 00:00 0                 [vvar]\n"
      "7ff85fdd9000-7ff85fddb000 r--p 00000000 00:00 0                 [vvar_vclock]\n"
      "7ff85fddb000-7ff85fddd000 r-xp 00000000 00:00 0                 [vdso]\n"
      "7fff537e4000-7fff53805000 rw-p 00000000 00:00 0                 [stack]\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0         [vsyscall]\n";
  std::map<uint64_t, proc::VmFlags> flags;
  flags[0x7fff537e4000].growsdown = true;
  flags[0x7ff85fdd5000] = {.dontdump = true, .io = true, .pfnmap = true};
  auto areas = Plan(kMaps, flags);
  ASSERT_TRUE(areas) << areas.error().ToString();
  ASSERT_EQ(areas->size(), 9u);  // [vsyscall] left out
  EXPECT_EQ((*areas)[0].kind, AreaKind::kFilePrivate);
  EXPECT_EQ((*areas)[0].path, "/usr/bin/cat");
  EXPECT_EQ((*areas)[0].flags, MAP_PRIVATE);
  EXPECT_EQ((*areas)[1].kind, AreaKind::kAnonymous);
  EXPECT_EQ((*areas)[1].path, "");
  EXPECT_EQ((*areas)[2].kind, AreaKind::kAnonymous);
  EXPECT_EQ((*areas)[3].file_offset, 0x26000u);
  EXPECT_EQ((*areas)[3].prot, PROT_READ | PROT_EXEC);
  EXPECT_EQ((*areas)[4].kind, AreaKind::kFileShared);
  EXPECT_EQ((*areas)[4].flags, MAP_SHARED);
  EXPECT_EQ((*areas)[5].kind, AreaKind::kVvar);
  EXPECT_EQ((*areas)[6].kind, AreaKind::kVvarVclock);
  EXPECT_EQ((*areas)[7].kind, AreaKind::kVdso);
  EXPECT_EQ((*areas)[8].kind, AreaKind::kStack);
  EXPECT_EQ((*areas)[8].flags, MAP_PRIVATE | MAP_GROWSDOWN);
}

TEST(PlanAreasTest, RefusesSharedAnonymousMemoryByName) {
  auto areas = Plan("7f0000000000-7f0000001000 rw-s 00000000 00:01 1043  /dev/zero (deleted)\n");
  ASSERT_FALSE(areas);
  EXPECT_NE(areas.error().message().find("area 7f0000000000-7f0000001000"), std::string::npos);
  EXPECT_NE(areas.error().message().find("shared anonymous memory"), std::string::npos);
  EXPECT_FALSE(Plan("7f0000000000-7f0000001000 rw-s 00000000 00:01 5  /memfd:x (deleted)\n"));
  EXPECT_FALSE(
      Plan("7f0000000000-7f0000001000 rw-s 00000000 00:01 32769  /SYSV00000000 (deleted)\n"));
}

TEST(PlanAreasTest, RefusesDeviceMemoryAndUnknownKernelAreas) {
  std::map<uint64_t, proc::VmFlags> flags;
  flags[0x7f0000000000] = {.io = true, .pfnmap = true};
  auto device = Plan("7f0000000000-7f0000001000 rw-s 00000000 00:06 9  /dev/dri/card0\n", flags);
  ASSERT_FALSE(device);
  EXPECT_NE(device.error().message().find("device memory"), std::string::npos);
  auto uprobes = Plan("7f0000000000-7f0000001000 r-xp 00000000 00:00 0  [uprobes]\n");
  ASSERT_FALSE(uprobes);
  EXPECT_NE(uprobes.error().message().find("[uprobes]"), std::string::npos);
}

TEST(PlanAreasTest, NamedAnonymousAreasStayAnonymous) {
  auto areas = Plan("7f0000000000-7f0000004000 rw-p 00000000 00:00 0  [anon:python arena]\n");
  ASSERT_TRUE(areas) << areas.error().ToString();
  EXPECT_EQ((*areas)[0].kind, AreaKind::kAnonymous);
  EXPECT_EQ((*areas)[0].path, "[anon:python arena]");
}

// An anonymous area of `pages` pages with the given stored pages, each page filled with its
// index + 1.
MemoryArea AnonymousArea(uint32_t pages, std::vector<uint32_t> stored,
                         AreaKind kind = AreaKind::kAnonymous) {
  MemoryArea area;
  area.start = 0x7f0000000000;
  area.end = area.start + uint64_t{pages} * kPageSize;
  area.kind = kind;
  for (uint32_t page : stored) {
    area.pages.push_back(page);
    area.page_data.insert(area.page_data.end(), kPageSize, static_cast<uint8_t>(page + 1));
  }
  return area;
}

TEST(FillSmallGapsTest, JoinsRunsAcrossSmallGapsWithZeroPages) {
  // Gaps: 1 page before the first, 3 between, 20 between, then 2 at the end.
  MemoryArea area = AnonymousArea(40, {1, 2, 6, 7, 28, 37});
  FillSmallGaps(area);
  std::vector<uint32_t> want;
  for (uint32_t p = 0; p <= 7; ++p) want.push_back(p);
  for (uint32_t p = 28; p < 40; ++p) want.push_back(p);
  EXPECT_EQ(area.pages, want);
  ASSERT_EQ(area.page_data.size(), want.size() * kPageSize);
  for (size_t i = 0; i < want.size(); ++i) {
    const uint32_t p = want[i];
    const bool stored = p == 1 || p == 2 || p == 6 || p == 7 || p == 28 || p == 37;
    EXPECT_EQ(area.page_data[i * kPageSize], stored ? p + 1 : 0) << "page " << p;
    EXPECT_EQ(area.page_data[i * kPageSize + kPageSize - 1], stored ? p + 1 : 0) << "page " << p;
  }
}

TEST(FillSmallGapsTest, LeavesLargeGapsEmptyAreasAndOtherKindsAlone) {
  MemoryArea sparse = AnonymousArea(100, {50});
  FillSmallGaps(sparse);
  EXPECT_EQ(sparse.pages, std::vector<uint32_t>{50});
  MemoryArea empty = AnonymousArea(4, {});
  FillSmallGaps(empty);
  EXPECT_TRUE(empty.pages.empty());
  // A gap in a file mapping shows the file, in a stack it is copied: no zeros there.
  for (AreaKind kind : {AreaKind::kFilePrivate, AreaKind::kStack}) {
    MemoryArea area = AnonymousArea(8, {1, 3}, kind);
    FillSmallGaps(area);
    EXPECT_EQ(area.pages, (std::vector<uint32_t>{1, 3}));
  }
  MemoryArea gap_of_nine = AnonymousArea(11, {0, 10});
  FillSmallGaps(gap_of_nine);
  EXPECT_EQ(gap_of_nine.pages, (std::vector<uint32_t>{0, 10}));
}

}  // namespace
}  // namespace ember::snapshot
