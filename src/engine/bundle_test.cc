#include "engine/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "base/fs.h"
#include "engine/function_store.h"
#include "image/tar_reader.h"

namespace ember::engine {
namespace {

struct TarEntry {
  unsigned type = 0;
  int mode = 0;
  std::string content;  // file data or symlink target
};

// name -> entry, in archive order (names also returned in order).
std::vector<std::pair<std::string, TarEntry>> ReadTar(const std::string& path) {
  std::vector<std::pair<std::string, TarEntry>> out;
  auto a = image::OpenTar(path);
  EXPECT_TRUE(a) << a.error().ToString();
  if (!a) return out;
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a->get(), &e) == ARCHIVE_OK) {
    TarEntry entry;
    entry.type = archive_entry_filetype(e);
    entry.mode = static_cast<int>(archive_entry_perm(e));
    if (entry.type == AE_IFLNK) entry.content = archive_entry_symlink(e);
    char buf[4096];
    la_ssize_t n = 0;
    while ((n = archive_read_data(a->get(), buf, sizeof buf)) > 0) {
      entry.content.append(buf, static_cast<size_t>(n));
    }
    EXPECT_EQ(archive_entry_uid(e), 0);
    out.emplace_back(archive_entry_pathname(e), entry);
  }
  return out;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-pack-XXXXXX";
    root_ = ::mkdtemp(templ);
    dir_ = root_ + "/fn";
    ASSERT_TRUE(MakeDirs(dir_));
  }
  void TearDown() override { (void)RemoveTree(root_); }

  void Write(const std::string& rel, const std::string& content, mode_t mode = 0644) {
    auto slash = rel.rfind('/');
    if (slash != std::string::npos) {
      ASSERT_TRUE(MakeDirs(dir_ + "/" + rel.substr(0, slash)));
    }
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/" + rel, content, mode));
  }
  void WriteHello() {
    Write("ember.toml",
          "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"handler.handle\"\n");
    Write("handler.py", "def handle(e, c):\n    return 1\n");
  }
  std::string PackToFile() {
    auto tar = PackBundle(dir_);
    EXPECT_TRUE(tar) << tar.error().ToString();
    std::string path = root_ + "/out.tar";
    EXPECT_TRUE(WriteFileAtomic(path, tar ? *tar : ""));
    return path;
  }

  std::string root_, dir_;
};

TEST_F(BundleTest, PacksFilesDirsAndSymlinksInOrderSkippingCaches) {
  WriteHello();
  Write("lib/util.py", "X = 1\n");
  Write("bin/run.sh", "#!/bin/sh\n", 0755);
  Write(".git/HEAD", "ref\n");
  Write("__pycache__/handler.cpython-311.pyc", "junk");
  Write("lib/__pycache__/util.cpython-311.pyc", "junk");
  Write(".env", "kept: only .git and __pycache__ are skipped\n");
  ASSERT_EQ(::symlink("lib/util.py", (dir_ + "/util.py").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/abs").c_str()), 0);

  auto entries = ReadTar(PackToFile());
  std::vector<std::string> names;
  std::map<std::string, TarEntry> by_name;
  for (auto [name, entry] : entries) {
    if (name.ends_with("/")) name.pop_back();  // pax marks directories so
    names.push_back(name);
    by_name[name] = entry;
  }
  EXPECT_EQ(names, (std::vector<std::string>{".env", "abs", "bin", "bin/run.sh", "ember.toml",
                                             "handler.py", "lib", "lib/util.py", "util.py"}));
  EXPECT_EQ(by_name["bin"].type, static_cast<unsigned>(AE_IFDIR));
  EXPECT_EQ(by_name["bin/run.sh"].mode, 0755);
  EXPECT_EQ(by_name["handler.py"].mode, 0644);
  EXPECT_EQ(by_name["handler.py"].content, "def handle(e, c):\n    return 1\n");
  EXPECT_EQ(by_name["util.py"].type, static_cast<unsigned>(AE_IFLNK));
  EXPECT_EQ(by_name["util.py"].content, "lib/util.py");
  EXPECT_EQ(by_name["abs"].content, "/etc/passwd") << "symlinks are stored, never followed";
}

TEST_F(BundleTest, PackedBundleStagesToTheSameTree) {
  WriteHello();
  Write("pkg/__init__.py", "");
  Write("data/big.bin", std::string(200000, 'x'));
  auto tar = PackBundle(dir_);
  ASSERT_TRUE(tar) << tar.error().ToString();
  auto store = FunctionStore::Open(root_ + "/data");
  ASSERT_TRUE(store);
  auto staged = store->Stage(*tar);
  ASSERT_TRUE(staged) << staged.error().ToString();
  EXPECT_EQ(*ReadFile(staged->code_dir() + "/data/big.bin"), std::string(200000, 'x'));
  EXPECT_EQ(staged->files(), 6u);
  // Packing again gives the same version: the version does not depend on the tar.
  auto again = store->Stage(*PackBundle(dir_));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->version(), staged->version());
}

TEST_F(BundleTest, ChecksTheManifestBeforePacking) {
  auto tar = PackBundle(dir_);
  ASSERT_FALSE(tar);
  EXPECT_EQ(tar.error().message(), "no ember.toml in " + dir_);
  Write("ember.toml", "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"handler.handle\"\n");
  tar = PackBundle(dir_);
  ASSERT_FALSE(tar);
  EXPECT_NE(tar.error().message().find("handler module 'handler' not found"), std::string::npos);
}

TEST_F(BundleTest, RefusesSpecialFiles) {
  WriteHello();
  ASSERT_EQ(::mkfifo((dir_ + "/pipe").c_str(), 0644), 0);
  auto tar = PackBundle(dir_);
  ASSERT_FALSE(tar);
  EXPECT_EQ(tar.error().message(),
            dir_ + "/pipe is a fifo: a bundle may hold only files, directories and symlinks");
}

}  // namespace
}  // namespace ember::engine
