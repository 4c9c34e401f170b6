#include "snapshot/image_reader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "snapshot/image_layout.h"
#include "snapshot/image_writer.h"
#include "snapshot/test_state.h"

namespace ember::snapshot {
namespace {

Result<ImageReader> OpenBytes(std::string_view bytes) {
  UniqueFd fd(::memfd_create("snapshot-test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  return ImageReader::Open(std::move(fd), "test.snap");
}

std::string Encode(const ProcessState& s) {
  auto bytes = EncodeImage(s);
  EXPECT_TRUE(bytes) << bytes.error().ToString();
  return *bytes;
}

FileHeader HeaderOf(std::string_view bytes) {
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  return h;
}

template <typename T>
void Poke(std::string& bytes, uint64_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

void Restamp(std::string& bytes) {
  ASSERT_TRUE(RestampChecksums({reinterpret_cast<uint8_t*>(bytes.data()), bytes.size()}));
}

// The error of opening `bytes`, which must fail.
Error OpenError(std::string_view bytes) {
  auto image = OpenBytes(bytes);
  EXPECT_FALSE(image) << "opened a damaged image";
  return image ? Error(ErrorCode::kInternal, "opened") : image.error();
}

void ExpectCorrupt(std::string_view bytes, std::string_view needle) {
  Error e = OpenError(bytes);
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.ToString();
  EXPECT_NE(e.message().find(needle), std::string::npos) << e.ToString();
}

TEST(ImageReaderTest, OpensWhatTheWriterWrote) {
  std::string bytes = Encode(testing::SyntheticState());
  auto image = OpenBytes(bytes);
  ASSERT_TRUE(image) << image.error().ToString();
  EXPECT_EQ(image->threads().size(), 3u);
  Restamp(bytes);  // restamping an intact image changes nothing
  EXPECT_EQ(bytes, Encode(testing::SyntheticState()));
}

TEST(ImageReaderTest, ForeignFileIsNotAnEmberSnapshot) {
  std::string bytes = Encode(testing::SyntheticState());
  std::memcpy(bytes.data(),
              "\x7f"
              "ELF\x02\x01\x01\x00",
              8);
  ExpectCorrupt(bytes, "not an ember snapshot");
  ExpectCorrupt("#!/bin/sh\n", "not an ember snapshot");
  ExpectCorrupt("E", "truncated");  // a prefix of the magic is a truncated image
}

TEST(ImageReaderTest, NewerFormatVersionIsUnsupportedNamingBoth) {
  std::string bytes = Encode(testing::SyntheticState());
  Poke<uint32_t>(bytes, offsetof(FileHeader, format_version), 7);
  Error e = OpenError(bytes);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_NE(e.message().find("version 7 is newer than this ember reads (version 2)"),
            std::string::npos)
      << e.message();
  EXPECT_NE(e.message().find("snapshot image test.snap"), std::string::npos);
}

// Version 1 had no recorded clocks, and so a shorter process record: it is refused by its
// version, never read with this version's layout.
TEST(ImageReaderTest, OlderFormatVersionIsUnsupportedNamingBoth) {
  std::string bytes = Encode(testing::SyntheticState());
  Poke<uint32_t>(bytes, offsetof(FileHeader, format_version), kFormatVersion - 1);
  Restamp(bytes);
  Error e = OpenError(bytes);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.ToString();
  EXPECT_NE(e.message().find("snapshot format version 1 is older than this ember reads "
                             "(version 2); take the snapshot again"),
            std::string::npos)
      << e.message();
  EXPECT_NE(e.message().find("snapshot image test.snap"), std::string::npos);
}

TEST(ImageReaderTest, EveryPrefixIsRefused) {
  const std::string bytes = Encode(testing::SyntheticState(1, 2, 1));
  for (size_t len = 0; len < bytes.size(); ++len) {
    Error e = OpenError(std::string_view(bytes).substr(0, len));
    ASSERT_EQ(e.code(), ErrorCode::kCorrupt) << len << ": " << e.ToString();
    if (len >= sizeof(FileHeader)) {
      ASSERT_NE(e.message().find(fmt::format("truncated: the header says {} bytes, the file has {}",
                                             bytes.size(), len)),
                std::string::npos)
          << e.message();
    }
  }
  ExpectCorrupt(bytes + std::string(3, '\0'), "3 bytes beyond");
}

TEST(ImageReaderTest, EveryFlippedMetadataByteIsCaught) {
  const std::string bytes = Encode(testing::SyntheticState(2, 2, 2));
  const FileHeader h = HeaderOf(bytes);
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, sizeof(FileHeader)}};
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    if (i == static_cast<uint32_t>(SectionKind::kPageData)) continue;
    ranges.emplace_back(h.sections[i].offset, h.sections[i].offset + h.sections[i].size);
  }
  size_t flipped = 0;
  for (auto [begin, end] : ranges) {
    for (uint64_t at = begin; at < end; ++at) {
      std::string damaged = bytes;
      damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
      auto image = OpenBytes(damaged);
      ASSERT_FALSE(image) << "flipped byte " << at << " went unnoticed";
      ++flipped;
    }
  }
  EXPECT_GT(flipped, 4000u);
  ExpectCorrupt(std::string(bytes).replace(h.sections[2].offset + 100, 1, "\x55"),
                "checksum mismatch in the metadata section");
}

TEST(ImageReaderTest, FlippedPageBytesAreCaughtByVerifyPagesOnly) {
  const std::string bytes = Encode(testing::SyntheticState());
  const SectionEntry pages = HeaderOf(bytes).sections[3];
  for (uint64_t at = pages.offset; at < pages.offset + pages.size; at += 509) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 1);
    auto image = OpenBytes(damaged);
    ASSERT_TRUE(image) << image.error().ToString();  // a cold boot does not read pages
    auto verified = image->VerifyPages();
    ASSERT_FALSE(verified) << "page byte " << at;
    EXPECT_EQ(verified.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(verified.error().message().find("the stored pages of area"), std::string::npos);
  }
}

TEST(ImageReaderTest, AbsurdCountsHitTheLimits) {
  std::string bytes = Encode(testing::SyntheticState());
  Poke<uint32_t>(bytes, offsetof(FileHeader, counts) + offsetof(ImageCounts, threads), 1000000);
  Restamp(bytes);
  ExpectCorrupt(bytes, "1000000 threads exceed the limit of 4096");

  bytes = Encode(testing::SyntheticState());
  Poke<uint64_t>(bytes, offsetof(FileHeader, counts) + offsetof(ImageCounts, stored_pages),
                 uint64_t{1} << 40);
  Restamp(bytes);
  ExpectCorrupt(bytes, "stored pages exceed the limit");

  // A header may declare lower limits than the reader's; its counts must respect them.
  bytes = Encode(testing::SyntheticState());
  Poke<uint32_t>(bytes, offsetof(FileHeader, limits) + offsetof(SizeLimits, max_files), 2);
  Restamp(bytes);
  ExpectCorrupt(bytes, "3 files exceed the limit of 2 declared in the header");

  bytes = Encode(testing::SyntheticState());
  const uint64_t meta_size = offsetof(FileHeader, sections) + 2 * sizeof(SectionEntry) + 16;
  Poke<uint64_t>(bytes, meta_size, uint64_t{1} << 40);
  Poke<uint64_t>(bytes, offsetof(FileHeader, header_checksum), HeaderChecksum(HeaderOf(bytes)));
  ExpectCorrupt(bytes, "the metadata section (1099511627776 bytes at offset 4096) overlaps");
}

TEST(ImageReaderTest, PointersOutOfBoundsOrUnlistedAreRefused) {
  const std::string good = Encode(testing::SyntheticState());
  const FileHeader h = HeaderOf(good);
  const uint64_t meta = h.sections[2].offset, meta_size = h.sections[2].size;
  const uint64_t relocs = h.sections[1].offset;
  auto damaged = [&](auto edit) {
    std::string bytes = good;
    edit(bytes);
    Restamp(bytes);
    return bytes;
  };
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint64_t>(b, meta + offsetof(ProcessRecord, threads), meta_size - 8);
                }),
                "outside the");
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint64_t>(b, meta + offsetof(ProcessRecord, areas), 1ull << 62);
                }),
                "areas");
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint64_t>(b, meta + offsetof(ProcessRecord, threads), 4);
                }),
                "misaligned");
  // cwd pointed into the thread records: relocation would rewrite the bytes it reads.
  ExpectCorrupt(damaged([&](std::string& b) {
                  uint64_t threads;
                  std::memcpy(&threads, b.data() + meta + offsetof(ProcessRecord, threads), 8);
                  Poke<uint64_t>(b, meta + offsetof(ProcessRecord, cwd), threads + 224);
                  Poke<uint32_t>(b, meta + offsetof(ProcessRecord, cwd) + 8, 0);
                }),
                "overlap records that hold pointers");
  // A relocation entry moved from a pointer to a count field.
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint64_t>(b, relocs, offsetof(ProcessRecord, thread_count) - 4);
                }),
                "relocation");
  ExpectCorrupt(damaged([&](std::string& b) { Poke<uint64_t>(b, relocs, meta_size); }),
                "outside the");
  // A string without its NUL.
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint32_t>(b, meta + offsetof(ProcessRecord, exe) + 8, 3);
                }),
                "exe: the string is not exactly 3 bytes");
  // A clock no time namespace can show (the kernel would refuse its offset at restore).
  ExpectCorrupt(damaged([&](std::string& b) {
                  Poke<uint64_t>(b, meta + offsetof(ProcessRecord, clocks) + 8, kMaxClockNs + 1);
                }),
                "beyond what a time namespace can show");
  // A run outside the page data.
  ExpectCorrupt(damaged([&](std::string& b) {
                  uint64_t runs;
                  std::memcpy(&runs, b.data() + meta + offsetof(ProcessRecord, page_runs), 8);
                  Poke<uint64_t>(b, meta + runs + 8, h.file_size);
                }),
                "page run 0 at file offset");
}

TEST(ImageReaderTest, WorkingSetReadsOnItsOwn) {
  std::string bytes = Encode(testing::SyntheticState());
  const FileHeader h = HeaderOf(bytes);
  char path[] = "/tmp/ember-snapws-XXXXXX";
  UniqueFd fd(::mkstemp(path));
  ASSERT_TRUE(fd.valid());
  bytes[h.sections[2].offset + 10] ^= 1;  // damaged metadata does not matter here
  ASSERT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto ws = ReadWorkingSet(path);
  ASSERT_TRUE(ws) << ws.error().ToString();
  EXPECT_EQ(*ws, testing::SyntheticState().working_set);
  EXPECT_FALSE(ImageReader::Open(path));
  ::unlink(path);
}

}  // namespace
}  // namespace ember::snapshot
