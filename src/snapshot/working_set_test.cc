#include "snapshot/working_set.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "base/unique_fd.h"

namespace ember::snapshot {
namespace {

class WorkingSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ember-working-set-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/image";
    ASSERT_TRUE(WriteFileAtomic(path_, std::string(64 * 4096, 'x')));
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_, path_;
};

TEST_F(WorkingSetTest, OnlyTouchedPagesOfTheImageMappingAreRecorded) {
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);
  constexpr size_t kLen = 64 * 4096;
  void* mapped = ::mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  ASSERT_NE(mapped, MAP_FAILED);
  auto* base = static_cast<volatile char*>(mapped);
  (void)base[3 * 4096];      // read
  base[7 * 4096 + 5] = 'y';  // written: copied on write, still in the working set
  // Another file-less mapping, touched: not part of the image.
  void* other = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(other, MAP_FAILED);
  static_cast<volatile char*>(other)[0] = 1;

  auto pages = RecordWorkingSet(::getpid(), path_);
  ASSERT_TRUE(pages) << pages.error().ToString();
  auto start = reinterpret_cast<uint64_t>(mapped);
  auto has = [&](uint64_t addr) {
    return std::find(pages->begin(), pages->end(), addr) != pages->end();
  };
  EXPECT_TRUE(has(start + 3 * 4096));
  EXPECT_TRUE(has(start + 7 * 4096));
  // A read fault may map cached neighbours too: its 16-page fault-around window, or the whole
  // large folio the page cache holds the page in (6.x maps a file's large folio at once; after
  // readahead under load one reached 43 pages past the read), so how far is the kernel's
  // choice. What must hold: nothing outside the image's mapping, not the file-less page.
  for (uint64_t page : *pages) {
    EXPECT_GE(page, start);
    EXPECT_LT(page, start + kLen);
  }
  EXPECT_FALSE(has(reinterpret_cast<uint64_t>(other)));
  ::munmap(mapped, kLen);
  ::munmap(other, 4096);
}

TEST_F(WorkingSetTest, MissingImageOrProcessIsAnError) {
  auto no_image = RecordWorkingSet(::getpid(), dir_ + "/absent");
  ASSERT_FALSE(no_image);
  EXPECT_NE(no_image.error().ToString().find("absent"), std::string::npos);
  auto no_process = RecordWorkingSet(::getpid(), path_, dir_);
  ASSERT_FALSE(no_process);
}

}  // namespace
}  // namespace ember::snapshot
