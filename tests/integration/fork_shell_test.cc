// Namespace shells (sandbox/fork_shell.h) on the real kernel: a process standing in for the
// template prepares rootfs trees and makes two shells around them; for each, a child cloned into
// a new pid namespace only joins the shell and checks what it got. Each check is one bit of the
// word the child passes back, so a failure names what is wrong; the child also passes back the
// inode numbers of its mount, ipc and uts namespaces, which must be its own.
#include "sandbox/fork_shell.h"

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
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "sandbox/fork_child.h"
#include "util/fixtures.h"

namespace ember::sandbox {
namespace {

using ember::testing::TempDir;

enum Check : int {
  kPrepared = 1 << 0,           // PrepareForkRootfs or MakeNamespaceShell failed
  kJoined = 1 << 1,             // JoinNamespaceShell failed
  kPidOne = 1 << 2,             // the child is pid 1 of its pid namespace
  kRootIsPrepared = 1 << 3,     // "/" is the overlay: the lower layer's file shows
  kNoTemplateTree = 1 << 4,     // nothing of the template's tree is left in the namespace
  kOwnProc = 1 << 5,            // /proc is a procfs of the child's pid namespace
  kProcMasked = 1 << 6,         // masked dirs empty, read-only, nosuid…; /proc/sys read-only
  kCwdIsRoot = 1 << 7,          // the cwd is the new root
  kNoShellInTemplate = 1 << 8,  // the template's own namespace shows none of it
};

struct Report {
  int failed = 0;
  ino_t ns[3] = {0, 0, 0};  // mnt, ipc, uts
};

constexpr std::array<const char*, 3> kNamespaces = {"mnt", "ipc", "uts"};

ino_t NamespaceInode(const std::string& proc_pid, const char* ns) {
  struct stat st {};
  return ::stat((proc_pid + "/ns/" + ns).c_str(), &st) == 0 ? st.st_ino : 0;
}

bool HasFlags(const char* path, unsigned long flags) {
  struct statvfs vfs {};
  return ::statvfs(path, &vfs) == 0 && (vfs.f_flag & flags) == flags;
}

// Runs in the child, after the clone into a new pid namespace.
Report JoinAndCheck(const ShellFds& shell, const ForkProcPlan& plan,
                    const std::string& template_dir) {
  Report report;
  uint32_t step = 0;
  if (JoinNamespaceShell(shell, plan, &step) != 0) {
    report.failed = kJoined;
    return report;
  }
  if (::getpid() != 1) report.failed |= kPidOne;
  if (!PathExists("/from-lower")) report.failed |= kRootIsPrepared;
  // The template's root was the host's: none of its files, its staging dir or the test's dir.
  if (PathExists("/etc") || PathExists(template_dir) || PathExists("/.ember-spawn")) {
    report.failed |= kNoTemplateTree;
  }
  // Every mount point is the root's own: "/", its /dev and its /proc (the host's /sys, /run,
  // /tmp… would be the template's).
  auto mounts = ReadFile("/proc/self/mountinfo");
  if (!mounts) report.failed |= kNoTemplateTree;
  std::istringstream lines(mounts ? *mounts : "");
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point != "/" && point.rfind("/dev", 0) != 0 && point.rfind("/proc", 0) != 0) {
      report.failed |= kNoTemplateTree;
    }
  }
  struct statfs proc {};
  char self[16] = {};
  if (::statfs("/proc", &proc) != 0 || proc.f_type != PROC_SUPER_MAGIC ||
      ::readlink("/proc/self", self, sizeof self - 1) != 1 || self[0] != '1') {
    report.failed |= kOwnProc;
  }
  for (const std::string& dir : plan.masked_dirs) {
    std::error_code error;
    if (!HasFlags(dir.c_str(), ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC) ||
        !std::filesystem::is_empty(dir, error) || error) {
      report.failed |= kProcMasked;
    }
  }
  if (PathExists("/proc/sys") && !HasFlags("/proc/sys", ST_RDONLY)) report.failed |= kProcMasked;
  char cwd[64] = {};
  if (::getcwd(cwd, sizeof cwd) == nullptr || std::string(cwd) != "/") report.failed |= kCwdIsRoot;
  for (size_t i = 0; i < kNamespaces.size(); ++i) {
    report.ns[i] = NamespaceInode("/proc/self", kNamespaces[i]);
  }
  return report;
}

// The stand-in template: its own mount namespace (as the real one, a copy of its parent's),
// the trees prepared there, two shells, one child per shell. Writes the children's reports.
int TemplateSide(const std::string& dir, int out) {
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return 1;
  }
  SandboxSpec spec;
  spec.tmpfs_size = 8ULL << 20;
  ForkRootfsPlan rootfs_plan = BuildForkRootfsPlan(spec);
  rootfs_plan.lower = dir + "/lower";
  MountPlan attach;
  attach.staging = dir + "/staging";
  attach.root = attach.staging + "/root";
  const ForkProcPlan proc_plan = BuildForkProcPlan(&ProcPathExists);
  auto mask_source = MakeMaskSource();
  if (!mask_source) {
    std::fprintf(stderr, "%s\n", mask_source.error().ToString().c_str());
    return 1;
  }
  std::vector<char> stack(size_t{64} * 1024);
  // Both shells stay open until the end: a namespace's inode number is reused once it is gone.
  std::vector<NamespaceShell> shells;
  for (int child_index = 0; child_index < 2; ++child_index) {
    Report report;
    auto prepared = PrepareForkRootfs(rootfs_plan);
    auto shell = prepared ? MakeNamespaceShell(std::move(*prepared), attach, stack)
                          : Result<NamespaceShell>(tl::unexpected(prepared.error()));
    if (!shell) {
      std::fprintf(stderr, "%s\n", shell.error().ToString().c_str());
      report.failed = kPrepared;
    } else {
      shells.push_back(std::move(*shell));
      int pipe_fds[2];
      if (::pipe(pipe_fds) != 0) return 1;
      pid_t child = static_cast<pid_t>(
          ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
      if (child == 0) {
        Report mine = JoinAndCheck(shells.back().fds(mask_source->get()), proc_plan, dir);
        ::_exit(::write(pipe_fds[1], &mine, sizeof mine) == sizeof mine ? 0 : 1);
      }
      int status = 0;
      if (child < 0 || ::waitpid(child, &status, 0) != child ||
          ::read(pipe_fds[0], &report, sizeof report) != sizeof report) {
        report.failed = kJoined;
      }
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      // The shell attached the trees in its own namespace: here the staging dir is still empty.
      if (PathExists(attach.staging + "/upper") || PathExists(attach.root + "/from-lower")) {
        report.failed |= kNoShellInTemplate;
      }
    }
    if (::write(out, &report, sizeof report) != sizeof report) return 1;
  }
  return 0;
}

TEST(ForkShellTest, EachChildJoinsNamespacesOfItsOwnWithThePreparedRoot) {
  EMBER_REQUIRE_PRIVILEGES();
  TempDir tmp;
  const std::string dir = tmp.path();
  ASSERT_TRUE(MakeDirs(dir + "/lower/proc"));
  ASSERT_TRUE(MakeDirs(dir + "/lower/dev"));
  ASSERT_TRUE(MakeDirs(dir + "/staging"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/lower/from-lower", "lower"));
  int reports[2];
  ASSERT_EQ(::pipe(reports), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(TemplateSide(dir, reports[1]));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::close(reports[1]);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  Report children[2];
  for (Report& report : children) {
    ASSERT_EQ(::read(reports[0], &report, sizeof report), static_cast<ssize_t>(sizeof report));
  }
  ::close(reports[0]);
  for (const Report& report : children) {
    const int failed = report.failed;
    EXPECT_EQ(failed & kPrepared, 0) << "preparing the trees or the shell failed (see stderr)";
    EXPECT_EQ(failed & kJoined, 0) << "JoinNamespaceShell failed in the child";
    EXPECT_EQ(failed & kPidOne, 0) << "the child is not pid 1 of its pid namespace";
    EXPECT_EQ(failed & kRootIsPrepared, 0) << "the child's root is not the prepared overlay";
    EXPECT_EQ(failed & kNoTemplateTree, 0) << "the template's tree shows in the child";
    EXPECT_EQ(failed & kOwnProc, 0) << "/proc is not the child's own procfs";
    EXPECT_EQ(failed & kProcMasked, 0) << "/proc is not masked as in plain boot";
    EXPECT_EQ(failed & kCwdIsRoot, 0) << "the child's cwd is not its root";
    EXPECT_EQ(failed & kNoShellInTemplate, 0) << "the shell's mounts show in the template";
  }
  const std::string self = "/proc/self";
  for (size_t i = 0; i < kNamespaces.size(); ++i) {
    SCOPED_TRACE(kNamespaces[i]);
    EXPECT_NE(children[0].ns[i], 0u);
    EXPECT_NE(children[0].ns[i], children[1].ns[i]) << "two children share a namespace";
    EXPECT_NE(children[0].ns[i], NamespaceInode(self, kNamespaces[i])) << "the test's own";
  }
}

}  // namespace
}  // namespace ember::sandbox
