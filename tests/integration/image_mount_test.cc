// Images through the real binary and the real kernel: imports, idmapped views, the flock
// reference count across processes, stale-mount collection, and the errors around them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "base/mounts.h"
#include "image/mount.h"
#include "image/store.h"
#include "util/fixtures.h"

namespace ember::image {
namespace {

using ember::testing::EmberEnv;

constexpr sandbox::IdRange kIds{300000, 65536};

int MountsUnder(const std::string& dir) { return static_cast<int>(MountPointsUnder(dir).size()); }

ImageRecord GetImage(const EmberEnv& env, const std::string& name) {
  auto store = Store::Open(env.data_dir());
  EXPECT_TRUE(store) << store.error().ToString();
  auto record = store->Get(name);
  EXPECT_TRUE(record) << record.error().ToString();
  return record ? *record : ImageRecord{};
}

// A small tree with files owned by root and by 1000:1000.
void MakeTree(const std::string& dir) {
  ASSERT_TRUE(MakeDirs(dir + "/etc"));
  ASSERT_TRUE(MakeDirs(dir + "/home/user"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/etc/hostname", "ember\n"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/home/user/notes", "mine\n", 0600));
  ASSERT_EQ(::chown((dir + "/home/user").c_str(), 1000, 1000), 0);
  ASSERT_EQ(::chown((dir + "/home/user/notes").c_str(), 1000, 1000), 0);
}

TEST(ImageMount, ImportedDirectoryAndTarballShowShiftedOwners) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  std::string tree = env.root() + "/tree";
  MakeTree(tree);
  auto dir_import = env.Ember({"image", "import", tree, "--name", "from-dir"});
  ASSERT_EQ(dir_import.exit_code, 0) << dir_import.err;
  std::string tarball = env.root() + "/tree.tar.gz";
  auto tar = ember::testing::RunCommand({"tar", "-C", tree, "-czf", tarball, "."});
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  auto tar_import = env.Ember({"image", "import", tarball});
  ASSERT_EQ(tar_import.exit_code, 0) << tar_import.err;
  EXPECT_NE(tar_import.err.find("imported image tree"), std::string::npos) << tar_import.err;

  for (const char* name : {"from-dir", "tree"}) {
    ImageRecord image = GetImage(env, name);
    auto lease = AcquireMount(image, kIds, env.run_dir());
    ASSERT_TRUE(lease) << lease.error().ToString();
    struct stat st {};
    ASSERT_EQ(::stat((lease->lower_dir() + "/etc/hostname").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kIds.host_base) << name;
    EXPECT_EQ(st.st_gid, kIds.host_base) << name;
    ASSERT_EQ(::stat((lease->lower_dir() + "/home/user/notes").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kIds.host_base + 1000) << name;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(*ReadFile(lease->lower_dir() + "/etc/hostname"), "ember\n");
    EXPECT_NE(::mkdir((lease->lower_dir() + "/new").c_str(), 0755), 0) << "the view is read-only";
  }
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, LeasesShareOneMountAndTheLastReleaseUnmounts) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  env.ImportBusyboxImage("busybox");
  ImageRecord image = GetImage(env, "busybox");
  std::string image_dir = env.run_dir() + "/images/" + image.digest;
  {
    auto first = AcquireMount(image, kIds, env.run_dir());
    ASSERT_TRUE(first) << first.error().ToString();
    auto second = AcquireMount(image, kIds, env.run_dir());
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_EQ(first->lower_dir(), second->lower_dir());
    EXPECT_EQ(MountsUnder(image_dir), 2) << "one raw mount and one idmapped view";
    EXPECT_TRUE(PathExists(first->lower_dir() + "/bin/busybox"));
    auto other = AcquireMount(image, sandbox::IdRange{400000, 65536}, env.run_dir());
    ASSERT_TRUE(other);
    EXPECT_EQ(MountsUnder(image_dir), 3);
    ASSERT_TRUE(other->Release());
    EXPECT_EQ(MountsUnder(image_dir), 2) << "an unused view goes away at once";
    ASSERT_TRUE(first->Release());
    EXPECT_EQ(MountsUnder(image_dir), 2) << "still held by the second lease";
  }
  EXPECT_EQ(MountsUnder(image_dir), 0);
  EXPECT_FALSE(PathExists(image_dir));
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, KilledHolderIsCollectedByCleanup) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  env.ImportBusyboxImage("busybox");
  ImageRecord image = GetImage(env, "busybox");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto lease = AcquireMount(image, kIds, env.run_dir());
    char ok = lease ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, 'y');
  std::string image_dir = env.run_dir() + "/images/" + image.digest;
  EXPECT_EQ(MountsUnder(image_dir), 2);
  ASSERT_TRUE(CleanupStaleMounts(env.run_dir()));
  EXPECT_EQ(MountsUnder(image_dir), 2) << "a live holder's mount must survive cleanup";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(CleanupStaleMounts(env.run_dir()));
  EXPECT_EQ(MountsUnder(image_dir), 0);
  EXPECT_FALSE(PathExists(image_dir));
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, RemoveIsRefusedWhileInUse) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  env.ImportBusyboxImage("busybox");
  ImageRecord image = GetImage(env, "busybox");
  {
    auto lease = AcquireMount(image, kIds, env.run_dir());
    ASSERT_TRUE(lease) << lease.error().ToString();
    auto refused = env.Ember({"image", "rm", "busybox"});
    EXPECT_EQ(refused.exit_code, 4) << refused.err;
    EXPECT_NE(refused.err.find("image busybox is in use by 1 sandbox(es)"), std::string::npos)
        << refused.err;
    EXPECT_TRUE(PathExists(image.blob_path));
  }
  auto removed = env.Ember({"image", "rm", "busybox"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_FALSE(PathExists(image.blob_path));
  auto ls = env.Ember({"image", "ls", "--output", "json"});
  EXPECT_EQ(ls.exit_code, 0);
  EXPECT_EQ(ls.out, "[]\n");
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, CorruptErofsFileIsAClearErrorAndMountsNothing) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  auto store = Store::Open(env.data_dir());
  ASSERT_TRUE(store);
  auto staging = store->CreateStaging("test");
  ASSERT_TRUE(staging);
  std::string file = staging->path() + "/image.erofs";
  ASSERT_TRUE(WriteFileAtomic(file, std::string(8192, 'x')));
  ImageRecord meta;
  meta.name = "broken";
  auto committed = store->Commit(file, meta, false);
  ASSERT_TRUE(committed);
  auto lease = AcquireMount(committed->record, kIds, env.run_dir());
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(
      lease.error().ToString().find("mount image broken (" + committed->record.blob_path + ")"),
      std::string::npos)
      << lease.error().ToString();
  EXPECT_NE(lease.error().ToString().find("not a valid EROFS image"), std::string::npos);
  EXPECT_EQ(MountsUnder(env.run_dir()), 0);
  EXPECT_FALSE(PathExists(env.run_dir() + "/images/" + committed->record.digest));
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, UnwritableDataDirIsOneClearLine) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  auto r = ember::testing::RunCommand({ember::testing::EmberBinary(), "--data-dir", "/proc/ember-x",
                                       "--run-dir", env.run_dir(), "image", "import", "/etc"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("image store in /proc/ember-x is not usable"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageMount, SameContentTwiceIsOneBlob) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  std::string tree = env.root() + "/tree";
  MakeTree(tree);
  std::string tarball = env.root() + "/tree.tar";
  ASSERT_EQ(ember::testing::RunCommand({"tar", "-C", tree, "-cf", tarball, "."}).exit_code, 0);
  auto a = env.Ember({"image", "import", tarball, "--name", "a"});
  auto b = env.Ember({"image", "import", tarball, "--name", "b"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out) << "same digest";
  EXPECT_EQ(ListDirectory(env.data_dir() + "/images")->size(), 1u);
  auto again = env.Ember({"image", "import", tarball, "--name", "a"});
  EXPECT_EQ(again.exit_code, 4) << again.err;
  EXPECT_NE(again.err.find("--force"), std::string::npos);
  EXPECT_EQ(env.Leaks(), "");
}

}  // namespace
}  // namespace ember::image
