#include "snapshot/image_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "base/fs.h"
#include "base/mapped_region.h"
#include "snapshot/compat.h"
#include "snapshot/image_reader.h"
#include "snapshot/test_state.h"

namespace ember::snapshot {
namespace {

class SnapshotImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-snapfmt-XXXXXX";
    dir_ = ::mkdtemp(templ);
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  ImageReader WriteAndOpen(const ProcessState& state, const std::string& name = "image.snap") {
    const std::string path = dir_ + "/" + name;
    auto written = WriteImage(state, path);
    EXPECT_TRUE(written) << written.error().ToString();
    auto image = ImageReader::Open(path);
    EXPECT_TRUE(image) << image.error().ToString();
    return std::move(*image);
  }

  std::string dir_;
};

void ExpectThread(const ThreadState& t, const ThreadRecord& r) {
  EXPECT_EQ(r.tid, t.tid);
  EXPECT_EQ(std::memcmp(&r.regs, &t.regs, sizeof r.regs), 0);
  EXPECT_EQ(std::vector<uint8_t>(r.xsave_bytes().begin(), r.xsave_bytes().end()), t.xsave);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.xsave.get()) % kXsaveAlign, 0u);
  EXPECT_EQ(r.fs_base, t.fs_base);
  EXPECT_EQ(r.gs_base, t.gs_base);
  EXPECT_EQ(r.sigmask, t.sigmask);
  EXPECT_EQ(r.altstack_sp, t.altstack_sp);
  EXPECT_EQ(r.altstack_size, t.altstack_size);
  EXPECT_EQ(r.altstack_flags, t.altstack_flags);
  EXPECT_EQ(r.clear_child_tid, t.clear_child_tid);
  EXPECT_EQ(r.robust_list, t.robust_list);
  EXPECT_EQ(r.robust_list_len, t.robust_list_len);
  EXPECT_EQ(r.rseq_addr, t.rseq_addr);
  EXPECT_EQ(r.rseq_len, t.rseq_len);
  EXPECT_EQ(r.rseq_sig, t.rseq_sig);
  EXPECT_EQ(r.restart_syscall(), t.restart_syscall);
}

// Pages of an area, rebuilt from its runs and the file.
std::vector<uint8_t> StoredPages(const ImageReader& image, const AreaRecord& area,
                                 std::vector<uint32_t>* indexes) {
  std::vector<uint8_t> bytes;
  for (const PageRunRecord& run : area.runs()) {
    const size_t at = bytes.size();
    bytes.resize(at + run.page_count * kPageSize);
    EXPECT_EQ(::pread(image.fd(), bytes.data() + at, run.page_count * kPageSize,
                      static_cast<off_t>(run.file_offset)),
              static_cast<ssize_t>(run.page_count * kPageSize));
    for (uint32_t p = 0; p < run.page_count; ++p) indexes->push_back(run.first_page + p);
  }
  return bytes;
}

TEST_F(SnapshotImageTest, RoundTripKeepsEveryField) {
  const ProcessState s = testing::SyntheticState(3, 5, 5);
  ImageReader image = WriteAndOpen(s);
  const ProcessRecord& p = image.process();
  EXPECT_EQ(p.pid, s.pid);
  EXPECT_EQ(p.umask, s.umask);
  EXPECT_EQ(p.pending_signals, s.pending_signals);
  EXPECT_EQ(p.cwd.view(), s.cwd);
  EXPECT_EQ(std::string(p.exe.c_str()), s.exe);
  EXPECT_EQ(p.mm.start_code, s.mm.start_code);
  EXPECT_EQ(p.mm.brk, s.mm.brk);
  EXPECT_EQ(p.mm.env_end, s.mm.env_end);
  EXPECT_EQ(p.clocks.monotonic_ns, s.clocks.monotonic_ns);
  EXPECT_EQ(p.clocks.boottime_ns, s.clocks.boottime_ns);
  EXPECT_EQ(std::vector<uint64_t>(image.auxv().begin(), image.auxv().end()), s.mm.auxv);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(p.rlimits[i].cur, s.rlimits[i].cur);
    EXPECT_EQ(p.rlimits[i].max, s.rlimits[i].max);
  }
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(p.signals[i].handler, s.signals[i].handler) << "signal " << i + 1;
    EXPECT_EQ(p.signals[i].flags, s.signals[i].flags);
    EXPECT_EQ(p.signals[i].restorer, s.signals[i].restorer);
    EXPECT_EQ(p.signals[i].mask, s.signals[i].mask);
  }
  ASSERT_EQ(image.threads().size(), s.threads.size());
  for (size_t i = 0; i < s.threads.size(); ++i) ExpectThread(s.threads[i], image.threads()[i]);

  ASSERT_EQ(image.areas().size(), s.areas.size());
  for (size_t i = 0; i < s.areas.size(); ++i) {
    const MemoryArea& a = s.areas[i];
    const AreaRecord& r = image.areas()[i];
    EXPECT_EQ(r.start, a.start);
    EXPECT_EQ(r.end, a.end);
    EXPECT_EQ(r.prot, a.prot);
    EXPECT_EQ(r.flags, a.flags);
    EXPECT_EQ(r.area_kind(), a.kind);
    EXPECT_EQ(r.dontdump != 0, a.dontdump);
    EXPECT_EQ(r.path.view(), a.path);
    EXPECT_EQ(r.file_offset, a.file_offset);
    EXPECT_EQ(r.dev, a.dev);
    EXPECT_EQ(r.inode, a.inode);
    std::vector<uint32_t> indexes;
    EXPECT_EQ(StoredPages(image, r, &indexes), a.page_data) << "area " << i;
    EXPECT_EQ(indexes, a.pages);
    EXPECT_EQ(r.stored_pages, a.pages.size());
  }
  ASSERT_EQ(image.files().size(), s.files.size());
  for (size_t i = 0; i < s.files.size(); ++i) {
    const FileDescriptor& f = s.files[i];
    const FileRecord& r = image.files()[i];
    EXPECT_EQ(r.fd, f.fd);
    EXPECT_EQ(r.file_kind(), f.kind);
    EXPECT_EQ(r.path.view(), f.path);
    EXPECT_EQ(r.path.c_str()[r.path.length], '\0');
    EXPECT_EQ(r.open_flags, f.open_flags);
    EXPECT_EQ(r.cloexec != 0, f.cloexec);
    EXPECT_EQ(r.offset, f.offset);
    EXPECT_EQ(r.dev, f.dev);
    EXPECT_EQ(r.inode, f.inode);
  }
  ASSERT_EQ(image.itimers().size(), s.itimers.size());
  for (size_t i = 0; i < s.itimers.size(); ++i) {
    EXPECT_EQ(image.itimers()[i].which, s.itimers[i].which);
    EXPECT_EQ(image.itimers()[i].interval_ns, s.itimers[i].interval_ns);
    EXPECT_EQ(image.itimers()[i].value_ns, s.itimers[i].value_ns);
  }
  ASSERT_EQ(image.posix_timers().size(), s.posix_timers.size());
  for (size_t i = 0; i < s.posix_timers.size(); ++i) {
    const PosixTimer& t = s.posix_timers[i];
    const PosixTimerRecord& r = image.posix_timers()[i];
    EXPECT_EQ(r.id, t.id);
    EXPECT_EQ(r.clock_id, t.clock_id);
    EXPECT_EQ(r.signal, t.signal);
    EXPECT_EQ(r.notify, t.notify);
    EXPECT_EQ(r.sigev_value, t.sigev_value);
    EXPECT_EQ(r.interval_ns, t.interval_ns);
    EXPECT_EQ(r.value_ns, t.value_ns);
    EXPECT_EQ(r.notify_tid, t.notify_tid);
  }
  EXPECT_EQ(std::vector<uint64_t>(image.working_set().begin(), image.working_set().end()),
            s.working_set);
  EXPECT_EQ(FixedString(image.compat().kernel_release), s.compat.kernel_release);
  EXPECT_TRUE(image.VerifyPages());
}

TEST_F(SnapshotImageTest, PointersAreUsableDirectlyAndPointIntoTheMapping) {
  ImageReader image = WriteAndOpen(testing::SyntheticState());
  const auto* begin = reinterpret_cast<const uint8_t*>(&image.process());
  const uint8_t* end = begin + image.header().sections[2].size;
  auto inside = [&](const void* p) {
    return static_cast<const uint8_t*>(p) >= begin && static_cast<const uint8_t*>(p) < end;
  };
  EXPECT_TRUE(inside(image.threads().data()));
  EXPECT_TRUE(inside(image.areas()[0].runs().data()));
  EXPECT_TRUE(inside(image.areas()[0].path.c_str()));
  EXPECT_TRUE(inside(image.files()[2].path.c_str()));
  EXPECT_EQ(std::string(image.areas()[0].path.c_str()), "/usr/lib/libarea0.so");
  // Area 1's runs follow area 0's in the process's run array.
  EXPECT_EQ(image.areas()[1].runs().data(), image.areas()[0].runs().data() + 2);
  // The relocated metadata is read-only: its line in /proc/self/maps says r--p.
  const auto addr = reinterpret_cast<uintptr_t>(begin);
  std::string perms;
  std::istringstream maps(*ReadFile("/proc/self/maps"));
  for (std::string line; std::getline(maps, line);) {
    unsigned long long lo = 0, hi = 0;
    char p[5] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
      perms = p;
    }
  }
  EXPECT_EQ(perms, "r--p");
}

TEST_F(SnapshotImageTest, RunsArePageAlignedContiguousAndMappable) {
  const ProcessState s = testing::SyntheticState();
  ImageReader image = WriteAndOpen(s);
  const AreaRecord& area = image.areas()[0];  // pages 0, 1, 3
  ASSERT_EQ(area.runs().size(), 2u);
  EXPECT_EQ(area.runs()[0].first_page, 0u);
  EXPECT_EQ(area.runs()[0].page_count, 2u);
  EXPECT_EQ(area.runs()[1].first_page, 3u);
  EXPECT_EQ(area.runs()[1].page_count, 1u);
  EXPECT_EQ(area.runs()[1].file_offset, area.runs()[0].file_offset + 2 * kPageSize);
  const AreaRecord& area1 = image.areas()[1];  // pages 2-5, 7
  EXPECT_EQ(area1.runs()[0].file_offset, area.runs()[1].file_offset + kPageSize);
  for (const AreaRecord& a : image.areas()) {
    for (const PageRunRecord& run : a.runs()) {
      EXPECT_EQ(run.file_offset % kPageSize, 0u);
      auto mapped = MappedRegion::Map(run.page_count * kPageSize, PROT_READ, MAP_PRIVATE,
                                      image.fd(), static_cast<off_t>(run.file_offset));
      ASSERT_TRUE(mapped) << mapped.error().ToString();
      const MemoryArea& src = s.areas[&a - image.areas().data()];
      const size_t index =
          std::find(src.pages.begin(), src.pages.end(), run.first_page) - src.pages.begin();
      EXPECT_EQ(std::memcmp(mapped->data(), src.page_data.data() + index * kPageSize,
                            run.page_count * kPageSize),
                0);
    }
  }
}

TEST_F(SnapshotImageTest, ImageWithoutStoredPages) {
  ProcessState s = testing::SyntheticState(1, 2, 0);
  for (auto& a : s.areas) {
    a.pages.clear();
    a.page_data.clear();
  }
  s.itimers.clear();
  s.posix_timers.clear();
  s.mm.auxv.clear();
  ImageReader image = WriteAndOpen(s);
  EXPECT_EQ(image.header().counts.stored_pages, 0u);
  EXPECT_EQ(image.header().sections[3].size, 0u);
  EXPECT_TRUE(image.areas()[0].runs().empty());
  EXPECT_EQ(image.areas()[0].runs().data(), nullptr);
  EXPECT_TRUE(image.files().empty());
  EXPECT_TRUE(image.itimers().empty());
  EXPECT_TRUE(image.auxv().empty());
  EXPECT_TRUE(image.VerifyPages());
}

TEST_F(SnapshotImageTest, WriterRefusesStatesTheFormatCannotHold) {
  ProcessState s = testing::SyntheticState();
  s.areas[1].pages = {3, 2};
  auto bad = EncodeImage(s);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("area 1"), std::string::npos) << bad.error().message();
  s = testing::SyntheticState();
  s.threads.clear();
  EXPECT_FALSE(EncodeImage(s));
  s = testing::SyntheticState();
  s.areas[2].start = s.areas[1].start;
  EXPECT_FALSE(EncodeImage(s));
  s = testing::SyntheticState();
  s.files[0].path = std::string("a\0b", 3);
  EXPECT_FALSE(EncodeImage(s));
}

TEST_F(SnapshotImageTest, AtomicWriteLeavesNoTempFileOnFailure) {
  const std::string target = dir_ + "/is-a-dir";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  auto written = WriteImage(testing::SyntheticState(), target);
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().message().find("rename"), std::string::npos)
      << written.error().ToString();
  EXPECT_EQ(*ListDirectory(dir_), std::vector<std::string>{"is-a-dir"});
  EXPECT_FALSE(WriteImage(testing::SyntheticState(), dir_ + "/missing/image.snap"));
  EXPECT_EQ(*ListDirectory(dir_), std::vector<std::string>{"is-a-dir"});
}

TEST_F(SnapshotImageTest, EncodeMatchesTheWrittenFile) {
  const ProcessState s = testing::SyntheticState();
  ASSERT_TRUE(WriteImage(s, dir_ + "/a.snap"));
  auto bytes = EncodeImage(s);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*ReadFile(dir_ + "/a.snap"), *bytes);
}

TEST_F(SnapshotImageTest, RewriteWorkingSetKeepsEverythingElse) {
  const ProcessState s = testing::SyntheticState();
  const std::string path = dir_ + "/image.snap";
  ASSERT_TRUE(WriteImage(s, path, 0640));
  const std::string before = *ReadFile(path);
  std::vector<uint64_t> pages = {0x600000, 0x400000, 0x401000, 0x700000, 0x403000};
  auto rewritten = RewriteWorkingSet(path, pages);
  ASSERT_TRUE(rewritten) << rewritten.error().ToString();
  auto ws = ReadWorkingSet(path);
  ASSERT_TRUE(ws) << ws.error().ToString();
  EXPECT_EQ(*ws, pages);
  auto image = ImageReader::Open(path);
  ASSERT_TRUE(image) << image.error().ToString();
  EXPECT_EQ(image->areas().size(), s.areas.size());
  EXPECT_TRUE(image->VerifyPages());
  const std::string after = *ReadFile(path);
  const uint64_t ws_at = image->header().sections[4].offset;
  EXPECT_EQ(after.substr(sizeof(FileHeader), ws_at - sizeof(FileHeader)),
            before.substr(sizeof(FileHeader), ws_at - sizeof(FileHeader)));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(ListDirectory(dir_)->size(), 1u);

  ASSERT_TRUE(RewriteWorkingSet(path, {}));
  EXPECT_TRUE(ReadWorkingSet(path)->empty());
  EXPECT_FALSE(RewriteWorkingSet(path, std::vector<uint64_t>{0x400001}));
  EXPECT_FALSE(RewriteWorkingSet(dir_ + "/missing.snap", pages));
  EXPECT_EQ(ListDirectory(dir_)->size(), 1u);
}

}  // namespace
}  // namespace ember::snapshot
