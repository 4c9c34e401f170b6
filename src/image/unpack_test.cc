#include "image/unpack.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "image/erofs.h"
#include "image/source.h"
#include "image/test_tar.h"

namespace ember::image {
namespace {

using testing::TarWriter;

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-unpack-XXXXXX";
    root_ = ::mkdtemp(templ);
    dest_ = root_ + "/dest";
    work_ = root_ + "/work";
    ASSERT_TRUE(MakeDirs(dest_));
    ASSERT_TRUE(MakeDirs(work_));
  }
  void TearDown() override { (void)RemoveTree(root_); }

  std::string Read(const std::string& rel) {
    auto content = ReadFile(dest_ + "/" + rel);
    return content ? *content : "<missing>";
  }
  bool Exists(const std::string& rel) { return PathExists(dest_ + "/" + rel); }
  size_t DestEntries() { return ListDirectory(dest_)->size(); }

  // Writes `fill` into a tar and expects unpacking it to be refused, naming `entry`, leaving
  // nothing behind.
  template <typename Fill>
  void ExpectRefused(Fill fill, const std::string& entry) {
    std::string tar = work_ + "/bad.tar";
    {
      TarWriter w(tar);
      w.File("innocent", "x");
      fill(w);
    }
    auto r = UnpackLayers({tar}, false, dest_);
    ASSERT_FALSE(r) << "accepted an archive with " << entry;
    EXPECT_NE(r.error().message().find("'" + entry + "'"), std::string::npos)
        << r.error().message();
    EXPECT_EQ(DestEntries(), 0u) << "something was written before the refusal";
    EXPECT_FALSE(PathExists(root_ + "/x")) << "wrote outside the destination";
  }

  std::string root_, dest_, work_;
};

TEST_F(UnpackTest, RefusesTraversal) {
  ExpectRefused([](TarWriter& w) { w.File("../x", "escape"); }, "../x");
  ExpectRefused([](TarWriter& w) { w.File("/etc/x", "escape"); }, "/etc/x");
  ExpectRefused([](TarWriter& w) { w.File("a/../../x", "escape"); }, "a/../../x");
}

TEST_F(UnpackTest, RefusesWritingThroughSymlink) {
  ExpectRefused(
      [](TarWriter& w) {
        w.Symlink("a", "/");
        w.File("a/etc/passwd", "root::0:0::/:/bin/sh\n");
      },
      "a/etc/passwd");
}

TEST_F(UnpackTest, RefusesEscapingHardlinkAndDevices) {
  ExpectRefused([](TarWriter& w) { w.Hardlink("h", "../../x"); }, "h");
  ExpectRefused([](TarWriter& w) { w.CharDevice("dev/null"); }, "dev/null");
}

TEST_F(UnpackTest, KeepsFilesLinksModesAndSymlinksPointingAnywhere) {
  std::string tar = work_ + "/ok.tar.gz";
  {
    TarWriter w(tar, "gzip");
    w.Dir("./");
    w.File("./bin/tool", "#!/bin/sh\n", 04755);
    w.Hardlink("bin/tool2", "bin/tool");
    w.Symlink("etc/os", "/usr/lib/os-release");  // absolute targets are fine as symlinks
    w.Dir("tmp", 01777);
  }
  auto r = UnpackLayers({tar}, false, dest_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->entries, 6u);  // bin, bin/tool, bin/tool2, etc, etc/os, tmp
  struct stat st {
  }, st2{};
  ASSERT_EQ(::stat((dest_ + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_mtime, 1600000000);
  ASSERT_EQ(::stat((dest_ + "/bin/tool2").c_str(), &st2), 0);
  EXPECT_EQ(st.st_ino, st2.st_ino);
  char target[64] = {};
  ASSERT_GT(::readlink((dest_ + "/etc/os").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "/usr/lib/os-release");
  ASSERT_EQ(::stat((dest_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_EQ(st.st_mtime, 1600000000) << "directory mtimes are set after their children";
}

TEST_F(UnpackTest, DockerArchiveWithTwoLayersAndWhiteouts) {
  {
    TarWriter l1(work_ + "/l1.tar");
    l1.File("etc/keep", "1");
    l1.File("etc/gone", "1");
    l1.File("opt/app/old", "1");
    l1.File("opt/app/sub/old", "1");
  }
  {
    TarWriter l2(work_ + "/l2.tar", "gzip");
    l2.File("etc/.wh.gone", "");
    l2.File("opt/app/.wh..wh..opq", "");
    l2.File("opt/app/new", "2");
    l2.File("etc/keep", "2");
  }
  std::string archive = work_ + "/image.tar";
  {
    TarWriter outer(archive);
    outer.File("manifest.json", R"([{"Config":"cfg.json","RepoTags":["example.com/tools/app:1.2"],)"
                                R"("Layers":["aaa/layer.tar","bbb/layer.tar"]}])");
    outer.File("cfg.json", "{}");
    outer.File("aaa/layer.tar", *ReadFile(work_ + "/l1.tar"));
    outer.File("bbb/layer.tar", *ReadFile(work_ + "/l2.tar"));
  }
  std::string scratch = root_ + "/scratch";
  ASSERT_TRUE(MakeDirs(scratch));
  auto source = PrepareSource(archive, scratch);
  ASSERT_TRUE(source) << source.error().ToString();
  EXPECT_EQ(source->kind, SourceKind::kDockerArchive);
  EXPECT_EQ(source->suggested_name, "example.com/tools/app:1.2");
  ASSERT_EQ(source->layer_files.size(), 2u);
  auto r = UnpackLayers(source->layer_files, true, dest_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(Read("etc/keep"), "2");
  EXPECT_FALSE(Exists("etc/gone"));
  EXPECT_FALSE(Exists("etc/.wh.gone"));
  EXPECT_FALSE(Exists("opt/app/old"));
  EXPECT_FALSE(Exists("opt/app/sub"));
  EXPECT_FALSE(Exists("opt/app/.wh..wh..opq"));
  EXPECT_EQ(Read("opt/app/new"), "2");
}

TEST_F(UnpackTest, OciArchiveFollowsIndexToLayers) {
  {
    TarWriter l1(work_ + "/l1.tar", "zstd");
    l1.File("usr/bin/a", "a1");
    l1.File("usr/bin/b", "b1");
  }
  {
    TarWriter l2(work_ + "/l2.tar", "gzip");
    l2.File("usr/bin/.wh.b", "");
    l2.File("usr/bin/c", "c2");
  }
  std::string h1 = std::string(64, '1'), h2 = std::string(64, '2'), hm = std::string(64, 'a');
  std::string manifest =
      R"({"schemaVersion":2,"config":{"digest":"sha256:)" + std::string(64, 'c') +
      R"("},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:)" +
      h1 + R"("},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:)" +
      h2 + R"("}]})";
  std::string archive = work_ + "/image.oci.tar";
  {
    TarWriter outer(archive);
    outer.File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    outer.File("index.json",
               R"({"schemaVersion":2,"manifests":[{"digest":"sha256:)" + hm +
                   R"(","annotations":{"org.opencontainers.image.ref.name":"v1"}}]})");
    outer.File("blobs/sha256/" + hm, manifest);
    outer.File("blobs/sha256/" + h1, *ReadFile(work_ + "/l1.tar"));
    outer.File("blobs/sha256/" + h2, *ReadFile(work_ + "/l2.tar"));
  }
  std::string scratch = root_ + "/scratch";
  ASSERT_TRUE(MakeDirs(scratch));
  auto source = PrepareSource(archive, scratch);
  ASSERT_TRUE(source) << source.error().ToString();
  EXPECT_EQ(source->kind, SourceKind::kOciArchive);
  EXPECT_EQ(source->suggested_name, "v1");
  auto r = UnpackLayers(source->layer_files, true, dest_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(Read("usr/bin/a"), "a1");
  EXPECT_FALSE(Exists("usr/bin/b"));
  EXPECT_EQ(Read("usr/bin/c"), "c2");
}

TEST(OciBlobPath, RefusesTraversalInDigests) {
  EXPECT_EQ(*OciBlobPath("sha256:ab12"), "blobs/sha256/ab12");
  EXPECT_FALSE(OciBlobPath("sha256:../../etc/passwd"));
  EXPECT_FALSE(OciBlobPath("nocolon"));
}

TEST(ErofsCrc32c, MatchesTheKnownVector) {
  // crc32c("123456789") = 0xE3069283 with the usual final inversion.
  EXPECT_EQ(~ErofsCrc32c(~0u, "123456789", 9), 0xE3069283u);
}

}  // namespace
}  // namespace ember::image
