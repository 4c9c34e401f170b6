// MakeDirs: `mkdir -p` with errors that name the path, and a fast path for what exists already.
#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace ember {
namespace {

class MakeDirsTest : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ember-fs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { (void)RemoveTree(root_); }
  std::string root_;
};

TEST_F(MakeDirsTest, MakesEveryMissingComponentWithTheMode) {
  std::string path = root_ + "/a/b/c";
  ASSERT_TRUE(MakeDirs(path, 0700));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(MakeDirs(path, 0700)) << "an existing directory is fine";
  EXPECT_TRUE(MakeDirs(root_ + "/a/b/d", 0755)) << "a new leaf under existing parents";
}

TEST_F(MakeDirsTest, AFileInTheWayIsAnErrorNamingIt) {
  std::string file = root_ + "/file";
  ASSERT_TRUE(WriteFileAtomic(file, "x", 0600));
  auto at_file = MakeDirs(file, 0700);
  ASSERT_FALSE(at_file);
  EXPECT_NE(at_file.error().ToString().find(file), std::string::npos) << at_file.error().ToString();
  auto below_file = MakeDirs(file + "/sub", 0700);
  ASSERT_FALSE(below_file);
  EXPECT_NE(below_file.error().ToString().find(file), std::string::npos)
      << below_file.error().ToString();
}

}  // namespace
}  // namespace ember
