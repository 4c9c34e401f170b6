#include "image/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace ember::image {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-store-XXXXXX";
    dir_ = ::mkdtemp(templ);
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  // A staged "EROFS" file with `content` (the store does not look inside blobs).
  std::string Stage(Store& store, const std::string& content, StagingDir* staging) {
    *staging = *store.CreateStaging("test");
    std::string file = staging->path() + "/image.erofs";
    EXPECT_TRUE(WriteFileAtomic(file, content));
    return file;
  }
  std::vector<std::string> Entries(const std::string& sub) {
    return *ListDirectory(dir_ + "/" + sub);
  }

  std::string dir_;
};

TEST_F(StoreTest, CommitWritesBlobThenRefAndLeavesNoTemporaries) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store) << store.error().ToString();
  StagingDir staging;
  std::string file = Stage(*store, "image bytes", &staging);
  ImageRecord meta;
  meta.name = "one";
  meta.kind = "tarball";
  auto committed = store->Commit(file, meta, false);
  ASSERT_TRUE(committed) << committed.error().ToString();
  staging.Remove();
  EXPECT_EQ(committed->record.digest.size(), 32u);
  EXPECT_EQ(Entries("images"), std::vector<std::string>{committed->record.digest + ".erofs"});
  EXPECT_EQ(Entries("refs"), std::vector<std::string>{"one.json"});
  EXPECT_TRUE(Entries("tmp").empty());
  struct stat st {};
  ASSERT_EQ(::stat(committed->record.blob_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);

  auto got = store->Get("one");
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->size, 11u);
  EXPECT_EQ(got->digest, committed->record.digest);
}

TEST_F(StoreTest, SameContentIsOneBlobAndRemoveKeepsItWhileNamed) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store);
  StagingDir s1, s2;
  ImageRecord a;
  a.name = "a";
  ImageRecord b;
  b.name = "b";
  auto ca = store->Commit(Stage(*store, "same", &s1), a, false);
  auto cb = store->Commit(Stage(*store, "same", &s2), b, false);
  ASSERT_TRUE(ca && cb);
  EXPECT_TRUE(cb->blob_was_present);
  EXPECT_EQ(Entries("images").size(), 1u);
  auto removed_a = store->Remove("a", ca->record.digest);
  ASSERT_TRUE(removed_a);
  EXPECT_FALSE(*removed_a) << "b still names the blob";
  auto removed_b = store->Remove("b", cb->record.digest);
  ASSERT_TRUE(removed_b);
  EXPECT_TRUE(*removed_b);
  EXPECT_TRUE(Entries("images").empty());
  auto missing = store->Get("a");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("ember image build python3.11"), std::string::npos);
}

TEST_F(StoreTest, ExistingNameNeedsReplaceAndReplacingDropsTheOldBlob) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store);
  StagingDir s1, s2, s3;
  ImageRecord meta;
  meta.name = "img";
  auto first = store->Commit(Stage(*store, "v1", &s1), meta, false);
  ASSERT_TRUE(first);
  auto refused = store->Commit(Stage(*store, "v2", &s2), meta, false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kAlreadyExists);
  auto replaced = store->Commit(Stage(*store, "v2", &s3), meta, true);
  ASSERT_TRUE(replaced) << replaced.error().ToString();
  ASSERT_TRUE(replaced->replaced_digest);
  EXPECT_EQ(*replaced->replaced_digest, first->record.digest);
  EXPECT_EQ(Entries("images"), std::vector<std::string>{replaced->record.digest + ".erofs"});
}

TEST_F(StoreTest, OpenCleansStaleStagingTempRefsAndOrphanBlobs) {
  ASSERT_TRUE(MakeDirs(dir_ + "/tmp/import-999-dead/rootfs/etc"));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/tmp/import-999-dead/rootfs/etc/x", "x"));
  ASSERT_TRUE(MakeDirs(dir_ + "/refs"));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/refs/a.json.tmp.1.2", "{"));
  ASSERT_TRUE(MakeDirs(dir_ + "/images"));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/images/" + std::string(32, 'a') + ".erofs", "orphan"));
  {
    auto store = Store::Open(dir_);
    ASSERT_TRUE(store) << store.error().ToString();
    // A live staging dir (its lock held) survives another Open.
    auto live = store->CreateStaging("build");
    ASSERT_TRUE(live);
    auto again = Store::Open(dir_);
    ASSERT_TRUE(again);
    EXPECT_TRUE(PathExists(live->path()));
    EXPECT_FALSE(PathExists(dir_ + "/tmp/import-999-dead"));
    EXPECT_TRUE(Entries("refs").empty());
    EXPECT_TRUE(Entries("images").empty());
  }
  EXPECT_TRUE(Entries("tmp").empty()) << "a staging dir is removed with its owner";
}

TEST_F(StoreTest, CorruptBlobAndRefAreNamed) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store);
  StagingDir s;
  ImageRecord meta;
  meta.name = "img";
  auto c = store->Commit(Stage(*store, "content", &s), meta, false);
  ASSERT_TRUE(c);
  ::chmod(c->record.blob_path.c_str(), 0644);
  ASSERT_TRUE(WriteFileAtomic(c->record.blob_path, "short"));
  auto bad = store->Get("img");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(bad.error().message().find(c->record.blob_path), std::string::npos);
  ::unlink(c->record.blob_path.c_str());
  auto gone = store->Get("img");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message().find("missing"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/refs/img.json", "not json"));
  auto broken = store->Get("img");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code(), ErrorCode::kCorrupt);
  auto invalid = store->Get("../etc");
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, UnusableDataDirIsOneClearError) {
  auto store = Store::Open("/proc/ember-no-such-dir");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().ToString().find("/proc/ember-no-such-dir"), std::string::npos);
  EXPECT_EQ(store.error().ToString().find('\n'), std::string::npos);
}

}  // namespace
}  // namespace ember::image
