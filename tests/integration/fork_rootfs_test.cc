// The rootfs a fork-boot template builds ahead (sandbox/fork_rootfs.h), on the real kernel: a
// process standing in for the template prepares the detached trees in its own mount namespace,
// a child it clones into a new mount namespace attaches them, and the child checks what it
// got. Each check is one bit of a word the processes pass back, so a failure names what is wrong.
#include "sandbox/fork_rootfs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"
#include "util/fixtures.h"

namespace ember::sandbox {
namespace {

using ember::testing::TempDir;

constexpr uint64_t kLayerSize = 8ULL << 20;

enum Check : int {
  kPrepared = 1 << 0,          // PrepareForkRootfs failed
  kAttached = 1 << 1,          // AttachForkRootfs failed
  kLayerIsCapped = 1 << 2,     // the layer is a tmpfs of kLayerSize
  kLowerVisible = 1 << 3,      // the lower layer's file shows through the overlay
  kWritesGoUp = 1 << 4,        // a write lands in the layer's upper dir, not in the lower
  kDevNull = 1 << 5,           // root/dev/null is the null device
  kOwnDevpts = 1 << 6,         // root/dev/pts is a devpts instance other than the host's
  kShmFlags = 1 << 7,          // root/dev/shm is nosuid, nodev, noexec
  kBindReadOnly = 1 << 8,      // the bind is read-only and shows its source
  kNoTreeInTemplate = 1 << 9,  // the template's namespace shows none of it
};

bool IsMagic(const std::string& path, int64_t magic) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<int64_t>(fs.f_type) == magic;
}

bool HasFlags(const std::string& path, unsigned long flags) {
  struct statvfs vfs {};
  return ::statvfs(path.c_str(), &vfs) == 0 && (vfs.f_flag & flags) == flags;
}

// Runs in the cloned child, in its own mount namespace: returns the failed checks.
int AttachAndCheck(const PreparedRootfs& prepared, const MountPlan& mounts,
                   const std::string& bind) {
  int failed = 0;
  uint32_t step = 0;
  if (AttachForkRootfs(prepared.layer.get(), prepared.root.get(), mounts, &step) != 0) {
    return kAttached;
  }
  const std::string& root = mounts.root;
  struct statfs layer {};
  if (::statfs(mounts.staging.c_str(), &layer) != 0 || layer.f_type != TMPFS_MAGIC ||
      layer.f_blocks * layer.f_bsize != kLayerSize) {
    failed |= kLayerIsCapped;
  }
  if (!PathExists(root + "/from-lower")) failed |= kLowerVisible;
  if (!WriteFileAtomic(root + "/written", "x") || !PathExists(mounts.staging + "/upper/written")) {
    failed |= kWritesGoUp;
  }
  struct stat null {};
  if (::stat((root + "/dev/null").c_str(), &null) != 0 || !S_ISCHR(null.st_mode) ||
      null.st_rdev != makedev(1, 3)) {
    failed |= kDevNull;
  }
  struct stat pts {
  }, host_pts{};
  if (!IsMagic(root + "/dev/pts", DEVPTS_SUPER_MAGIC) ||
      ::stat((root + "/dev/pts").c_str(), &pts) != 0 || ::stat("/dev/pts", &host_pts) != 0 ||
      pts.st_dev == host_pts.st_dev) {
    failed |= kOwnDevpts;
  }
  if (!HasFlags(root + "/dev/shm", ST_NOSUID | ST_NODEV | ST_NOEXEC)) failed |= kShmFlags;
  if (!HasFlags(root + bind, ST_RDONLY | ST_NOSUID | ST_NODEV) ||
      !PathExists(root + bind + "/handler.py")) {
    failed |= kBindReadOnly;
  }
  return failed;
}

// Runs in a forked process that plays the template: its own mount namespace, the trees
// prepared there, one child cloned into a new mount namespace to attach them.
int ReportTo(int fd, int failed) {
  return ::write(fd, &failed, sizeof failed) == sizeof failed ? 0 : 1;
}

// `from_child`: a pipe for the child's word.
int TemplateSide(const std::string& dir, const int from_child[2]) {
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return kPrepared;
  }
  SandboxSpec spec;
  spec.tmpfs_size = kLayerSize;
  spec.binds = {{dir + "/code", dir + "/code"}};
  ForkRootfsPlan plan = BuildForkRootfsPlan(spec);
  plan.lower = dir + "/lower";
  auto prepared = PrepareForkRootfs(plan);
  if (!prepared) {
    std::fprintf(stderr, "%s\n", prepared.error().ToString().c_str());
    return kPrepared;
  }
  MountPlan mounts;
  mounts.staging = dir + "/staging";
  mounts.root = mounts.staging + "/root";
  pid_t child = static_cast<pid_t>(
      ::syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (child == 0)
    ::_exit(ReportTo(from_child[1], AttachAndCheck(*prepared, mounts, dir + "/code")));
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return kAttached;
  int failed = 0;
  if (::read(from_child[0], &failed, sizeof failed) != sizeof failed) return kAttached;
  // Attached in the child's namespace only: here the staging dir is still the empty one.
  if (PathExists(mounts.staging + "/upper")) failed |= kNoTreeInTemplate;
  return failed;
}

TEST(ForkRootfsTest, APreparedTreeAttachedInTheChildIsTheForkRootfs) {
  EMBER_REQUIRE_PRIVILEGES();
  TempDir tmp;
  const std::string dir = tmp.path();
  ASSERT_TRUE(MakeDirs(dir + "/lower/dev"));
  ASSERT_TRUE(MakeDirs(dir + "/code"));
  ASSERT_TRUE(MakeDirs(dir + "/staging"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/lower/from-lower", "lower"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/code/handler.py", "def handle(e, c): return 1\n"));
  int from_template[2], from_child[2];
  ASSERT_EQ(::pipe(from_template), 0);
  ASSERT_EQ(::pipe(from_child), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(ReportTo(from_template[1], TemplateSide(dir, from_child)));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  int failed = -1;
  ASSERT_EQ(::read(from_template[0], &failed, sizeof failed), static_cast<ssize_t>(sizeof failed));
  for (int fd : {from_template[0], from_template[1], from_child[0], from_child[1]}) ::close(fd);
  EXPECT_EQ(failed & kPrepared, 0) << "PrepareForkRootfs failed (its error is on stderr)";
  EXPECT_EQ(failed & kAttached, 0) << "AttachForkRootfs failed in the child";
  EXPECT_EQ(failed & kLayerIsCapped, 0) << "the layer is not an 8 MiB tmpfs";
  EXPECT_EQ(failed & kLowerVisible, 0) << "the lower layer does not show through";
  EXPECT_EQ(failed & kWritesGoUp, 0) << "a write did not land in the layer's upper dir";
  EXPECT_EQ(failed & kDevNull, 0) << "root/dev/null is not the null device";
  EXPECT_EQ(failed & kOwnDevpts, 0) << "root/dev/pts is not a devpts instance of its own";
  EXPECT_EQ(failed & kShmFlags, 0) << "root/dev/shm is not nosuid, nodev, noexec";
  EXPECT_EQ(failed & kBindReadOnly, 0) << "the bind is not read-only or does not show its source";
  EXPECT_EQ(failed & kNoTreeInTemplate, 0) << "the attached tree shows in the template";
}

}  // namespace
}  // namespace ember::sandbox
