#include "engine/bundle_tree.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <set>

#include "base/fs.h"

namespace ember::engine {
namespace {

class BundleTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-tree-XXXXXX";
    dir_ = ::mkdtemp(templ);
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  void Write(const std::string& rel, const std::string& content, mode_t mode) {
    std::string path = dir_ + "/" + rel;
    ASSERT_TRUE(WriteFileAtomic(path, content, mode));
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }
  mode_t Mode(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::lstat((dir_ + "/" + rel).c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  std::string dir_;
};

TEST_F(BundleTreeTest, ModesBecomeWorldReadableWithoutSetIdBits) {
  ASSERT_TRUE(MakeDirs(dir_ + "/private", 0700));
  ASSERT_EQ(::chmod((dir_ + "/private").c_str(), 0700), 0);
  Write("private/secret", "s", 0600);
  Write("setuid", "x", 04711);
  Write("group-exec", "x", 0610);
  Write("odd", "x", 0602);
  ASSERT_EQ(::symlink("secret", (dir_ + "/private/link").c_str()), 0);
  auto tree = NormalizeBundleTree(dir_);
  ASSERT_TRUE(tree) << tree.error().ToString();
  EXPECT_EQ(tree->entries, 6u);
  EXPECT_EQ(tree->bytes, 4u);
  EXPECT_EQ(tree->digest.size(), 32u);
  EXPECT_EQ(Mode(""), 0755u);
  EXPECT_EQ(Mode("private"), 0755u);
  EXPECT_EQ(Mode("private/secret"), 0644u);
  EXPECT_EQ(Mode("setuid"), 0755u);
  EXPECT_EQ(Mode("group-exec"), 0755u);
  EXPECT_EQ(Mode("odd"), 0644u);
}

TEST_F(BundleTreeTest, ExtendedAttributesAreDropped) {
  Write("f", "x", 0644);
  std::string path = dir_ + "/f";
  if (::setxattr(path.c_str(), "user.ember_test", "1", 1, 0) != 0) {
    GTEST_SKIP() << "no user xattrs on " << dir_;
  }
  ASSERT_TRUE(NormalizeBundleTree(dir_));
  char value[8];
  EXPECT_LT(::getxattr(path.c_str(), "user.ember_test", value, sizeof value), 0);
}

TEST_F(BundleTreeTest, DigestCoversContentModesAndLinks) {
  Write("a", "1", 0644);
  auto first = NormalizeBundleTree(dir_);
  Write("a", "2", 0644);
  auto content = NormalizeBundleTree(dir_);
  ASSERT_EQ(::chmod((dir_ + "/a").c_str(), 0755), 0);
  auto mode = NormalizeBundleTree(dir_);
  ASSERT_EQ(::symlink("a", (dir_ + "/l").c_str()), 0);
  auto link = NormalizeBundleTree(dir_);
  ASSERT_EQ(::unlink((dir_ + "/l").c_str()), 0);
  ASSERT_EQ(::symlink("b", (dir_ + "/l").c_str()), 0);
  auto target = NormalizeBundleTree(dir_);
  auto same = NormalizeBundleTree(dir_);
  ASSERT_TRUE(first && content && mode && link && target && same);
  std::set<std::string> digests = {first->digest, content->digest, mode->digest, link->digest,
                                   target->digest};
  EXPECT_EQ(digests.size(), 5u);
  EXPECT_EQ(same->digest, target->digest);
}

TEST_F(BundleTreeTest, RefusesSpecialFiles) {
  ASSERT_EQ(::mkfifo((dir_ + "/p").c_str(), 0644), 0);
  auto tree = NormalizeBundleTree(dir_);
  ASSERT_FALSE(tree);
  EXPECT_EQ(tree.error().message(),
            "bundle entry 'p' is a fifo: a bundle may hold only files, directories and symlinks");
}

}  // namespace
}  // namespace ember::engine
