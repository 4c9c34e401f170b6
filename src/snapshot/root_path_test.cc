#include "snapshot/root_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"

namespace ember::snapshot {
namespace {

class ResolveInRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ember-root-path-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(MakeDirs(dir_ + "/etc"));
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/etc/a", "a"));
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/etc/b", "b"));
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  struct stat Stat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st;
  }
  std::string dir_;
};

TEST_F(ResolveInRootTest, PathInsideTheRootAsAPivotedProcessShowsIt) {
  SandboxRoot root{dir_, "/"};
  auto file = ResolveInRoot(root, "/etc/a", Stat(dir_ + "/etc/a"), "fd 3");
  ASSERT_TRUE(file) << file.error().ToString();
  EXPECT_EQ(file->path, "/etc/a");
  EXPECT_EQ(file->inode, Stat(dir_ + "/etc/a").st_ino);
}

TEST_F(ResolveInRootTest, HostPathOfAChrootedProcessLosesTheRootPrefix) {
  SandboxRoot root{dir_, dir_};
  auto file = ResolveInRoot(root, dir_ + "/etc/a", Stat(dir_ + "/etc/a"), "fd 3");
  ASSERT_TRUE(file) << file.error().ToString();
  EXPECT_EQ(file->path, "/etc/a");
  auto top = ResolveInRoot(root, dir_, Stat(dir_), "the working directory");
  ASSERT_TRUE(top) << top.error().ToString();
  EXPECT_EQ(top->path, "/");
}

TEST_F(ResolveInRootTest, AnotherFileAtThatPathIsRefusedByName) {
  SandboxRoot root{dir_, "/"};
  auto file = ResolveInRoot(root, "/etc/a", Stat(dir_ + "/etc/b"), "fd 3");
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message().find("fd 3 is /etc/a, but that path"), std::string::npos)
      << file.error().message();
  EXPECT_FALSE(ResolveInRoot(root, "/etc/missing", Stat(dir_ + "/etc/a"), "fd 3"));
}

TEST_F(ResolveInRootTest, DeletedAndPathlessFilesAreRefused) {
  SandboxRoot root{dir_, "/"};
  auto deleted = ResolveInRoot(root, "/etc/a (deleted)", Stat(dir_ + "/etc/a"), "fd 4");
  ASSERT_FALSE(deleted);
  EXPECT_NE(deleted.error().message().find("fd 4 is the deleted file"), std::string::npos);
  EXPECT_FALSE(ResolveInRoot(root, "pipe:[12]", Stat(dir_ + "/etc/a"), "fd 4"));
}

}  // namespace
}  // namespace ember::snapshot
