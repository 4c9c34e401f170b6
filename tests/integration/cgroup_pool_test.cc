// The cgroup pool on this machine's real hierarchy (v1 here, v2 on a pure-v2 host). Each test
// uses its own pool name and lock dir, and removes its tree at the end even when it fails. Only
// processes these tests forked are ever signalled.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>

#include "base/fs.h"
#include "sandbox/cgroup/pool.h"
#include "util/fixtures.h"

namespace ember::cgroup {
namespace {

using ember::testing::TempDir;

// A pool with a unique name; Destroy on scope exit, then a manual sweep if Destroy failed.
class PoolGuard {
 public:
  PoolGuard(size_t target_free = 2) {
    static int counter = 0;
    auto h = DetectHierarchy();
    EXPECT_TRUE(h) << h.error().ToString();
    if (!h) return;
    hierarchy_ = *h;
    options_.name = "ember-cgtest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    options_.lock_dir = tmp_.path() + "/cgroups";
    options_.target_free = target_free;
    auto pool = Pool::Open(hierarchy_, options_);
    EXPECT_TRUE(pool) << pool.error().ToString();
    if (pool) pool_.emplace(std::move(*pool));
  }
  ~PoolGuard() {
    if (pool_) {
      auto destroyed = pool_->Destroy();
      EXPECT_TRUE(destroyed) << destroyed.error().ToString();
    }
    for (const auto& root : hierarchy_.Roots()) {
      std::string parent = root + "/" + options_.name;
      if (!PathExists(parent)) continue;
      ADD_FAILURE() << "left behind: " << parent;
      if (auto entries = ListDirectory(parent)) {
        for (const auto& e : *entries) {
          if (SlotNumber(e) < 0) continue;
          SlotDirs one{parent + "/" + e, parent + "/" + e, parent + "/" + e};
          (void)EmptySlot(one, hierarchy_.version, "/" + options_.name + "/" + e,
                          std::chrono::seconds(2));
          (void)RemoveCgroupDir(parent + "/" + e);
        }
      }
      (void)RemoveCgroupDir(parent);
    }
  }
  Pool& pool() { return *pool_; }
  bool ok() const { return pool_.has_value(); }
  const Hierarchy& hierarchy() const { return hierarchy_; }
  const PoolOptions& options() const { return options_; }
  // Slot directories that exist under each root.
  size_t SlotDirCount(const std::string& root) const {
    auto entries = ListDirectory(root + "/" + options_.name);
    size_t n = 0;
    if (entries) {
      for (const auto& e : *entries) n += SlotNumber(e) >= 0;
    }
    return n;
  }

 private:
  TempDir tmp_;
  Hierarchy hierarchy_;
  PoolOptions options_;
  std::optional<Pool> pool_;
};

// A forked child that waits for Go() before running `body`, so the parent can attach it to a
// cgroup first — the same order the launcher uses.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[1]);
      char c;
      if (::read(fds[0], &c, 1) != 1) ::_exit(99);
      ::_exit(body());
    }
    ::close(fds[0]);
    go_.reset(fds[1]);
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  pid_t pid() const { return pid_; }
  void Go() {
    char c = 'g';
    ASSERT_EQ(::write(go_.get(), &c, 1), 1);
    go_.reset();
  }
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd go_;
  bool reaped_ = false;
};

// Makes this process the reaper of orphans for its scope (the sandbox processes these tests leave
// behind would otherwise become zombies of a pid 1 that may never reap them), and reaps them at
// the end. Declare it before any Child so that every Child has waited for its own pid first.
class OrphanReaper {
 public:
  OrphanReaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  ~OrphanReaper() {
    for (int i = 0; i < 200; ++i) {
      pid_t p = ::waitpid(-1, nullptr, WNOHANG);
      if (p < 0) break;             // ECHILD: none left
      if (p == 0) ::usleep(10000);  // some still dying
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  }
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
std::string Read(const std::string& path) {
  auto text = ReadFile(path);
  return text ? Trim(*text) : "<" + text.error().ToString() + ">";
}
bool ProcsContain(const std::string& dir, pid_t pid) {
  auto pids = ListProcs(dir);
  return pids && std::find(pids->begin(), pids->end(), pid) != pids->end();
}

TEST(CgroupPoolReal, FillCreatesSlotsAndClaimCreatesNone) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(3);
  ASSERT_TRUE(guard.ok());
  auto made = guard.pool().Fill();
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_EQ(*made, 3u);
  for (const auto& root : guard.hierarchy().Roots())
    EXPECT_EQ(guard.SlotDirCount(root), 3u) << root;
  {
    auto lease = guard.pool().Claim();
    ASSERT_TRUE(lease) << lease.error().ToString();
    EXPECT_EQ(lease->slot(), "pool-0");
    for (const auto& root : guard.hierarchy().Roots()) EXPECT_EQ(guard.SlotDirCount(root), 3u);
    EXPECT_EQ(*guard.pool().CountFree(), 2u);
    EXPECT_EQ(lease->v2_dir_fd() >= 0, guard.hierarchy().version == Version::kV2);
  }
  EXPECT_EQ(*guard.pool().CountFree(), 3u);
}

TEST(CgroupPoolReal, AttachApplyAndReleaseKillsLeftovers) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(1);
  ASSERT_TRUE(guard.ok());
  ASSERT_TRUE(guard.pool().Fill());
  Child child([] {
    ::pause();
    return 0;
  });
  auto lease = guard.pool().Claim();
  ASSERT_TRUE(lease) << lease.error().ToString();
  ASSERT_TRUE(lease->Attach(child.pid()));
  const SlotDirs& d = lease->dirs();
  EXPECT_TRUE(ProcsContain(d.memory, child.pid()));
  EXPECT_TRUE(ProcsContain(d.cpu, child.pid()));
  EXPECT_TRUE(ProcsContain(d.pids, child.pid()));
  std::string where = Read("/proc/" + std::to_string(child.pid()) + "/cgroup");
  EXPECT_NE(where.find("/" + guard.options().name + "/" + lease->slot()), std::string::npos)
      << where;

  ASSERT_TRUE(lease->Apply({64ULL << 20, 0.5, 32}));
  if (guard.hierarchy().version == Version::kV1) {
    EXPECT_EQ(Read(d.memory + "/memory.limit_in_bytes"), "67108864");
    if (PathExists(d.memory + "/memory.memsw.limit_in_bytes")) {
      EXPECT_EQ(Read(d.memory + "/memory.memsw.limit_in_bytes"), "67108864");
    }
    EXPECT_EQ(Read(d.cpu + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(Read(d.cpu + "/cpu.cfs_quota_us"), "50000");
  } else {
    EXPECT_EQ(Read(d.memory + "/memory.max"), "67108864");
    EXPECT_EQ(Read(d.cpu + "/cpu.max"), "50000 100000");
  }
  EXPECT_EQ(Read(d.pids + "/pids.max"), "32");

  std::string slot = lease->slot();
  ASSERT_TRUE(lease->Release());
  int status = child.Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const auto& dir : d.Distinct()) EXPECT_EQ(Read(dir + "/cgroup.procs"), "") << dir;

  // Reusable, and the previous limits do not leak into the next sandbox.
  auto again = guard.pool().Claim();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->slot(), slot);
  ASSERT_TRUE(again->Apply({}));
  EXPECT_EQ(Read(again->dirs().pids + "/pids.max"), "max");
  if (guard.hierarchy().version == Version::kV1) {
    EXPECT_EQ(Read(again->dirs().cpu + "/cpu.cfs_quota_us"), "-1");
    EXPECT_EQ(Read(again->dirs().memory + "/memory.limit_in_bytes"), "9223372036854771712");
  } else {
    EXPECT_EQ(Read(again->dirs().memory + "/memory.max"), "max");
  }
}

TEST(CgroupPoolReal, ReleaseKillsADaemonizedGrandchild) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(1);
  ASSERT_TRUE(guard.ok());
  OrphanReaper reaper;
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  Child child([&] {
    // Double fork: the grandchild is nobody's child in this test, as a sandbox's daemon would be.
    if (::fork() == 0) {
      if (::fork() == 0) {
        pid_t me = ::getpid();
        (void)!::write(report[1], &me, sizeof me);
        for (;;) ::pause();
      }
      ::_exit(0);
    }
    ::wait(nullptr);
    return 0;
  });
  ::close(report[1]);
  auto lease = guard.pool().Claim();
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Attach(child.pid()));
  child.Go();
  pid_t grandchild = -1;
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild), (ssize_t)sizeof grandchild);
  ::close(report[0]);
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_TRUE(ProcsContain(lease->dirs().pids, grandchild));
  UniqueFd pidfd(::syscall(SYS_pidfd_open, grandchild, 0));
  ASSERT_TRUE(pidfd.valid());
  ASSERT_TRUE(lease->Release());
  for (const auto& dir : lease->dirs().Distinct()) EXPECT_EQ(Read(dir + "/cgroup.procs"), "");
  // The pidfd of an exited process polls readable.
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 2000), 1);
}

TEST(CgroupPoolReal, MemoryLimitOomKillsAndIsCounted) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(1);
  ASSERT_TRUE(guard.ok());
  Child hog([] {
    for (int i = 0; i < 512; ++i) {
      auto* p = static_cast<char*>(::malloc(1 << 20));
      if (p == nullptr) return 2;
      std::memset(p, 1, 1 << 20);
    }
    return 0;  // survived 512 MiB: the limit did not hold
  });
  auto lease = guard.pool().Claim();
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Apply({.memory_bytes = 32ULL << 20}));
  ASSERT_TRUE(lease->Attach(hog.pid()));
  EXPECT_EQ(*lease->OomKills(), 0u);
  hog.Go();
  int status = hog.Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  auto kills = lease->OomKills();
  ASSERT_TRUE(kills) << kills.error().ToString();
  EXPECT_EQ(*kills, 1u);
  auto peak = lease->MemoryPeakBytes();
  if (peak || guard.hierarchy().version == Version::kV1) {
    ASSERT_TRUE(peak) << peak.error().ToString();
    EXPECT_GE(*peak, 24ULL << 20);
    EXPECT_LE(*peak, 33ULL << 20);
  }
}

TEST(CgroupPoolReal, PidsLimitStopsAForkLoop) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(1);
  ASSERT_TRUE(guard.ok());
  OrphanReaper reaper;
  Child forker([] {
    for (int i = 0; i < 100; ++i) {
      pid_t p = ::fork();
      if (p == 0) {
        for (;;) ::pause();
      }
      if (p < 0) return errno == EAGAIN ? 10 + i : 1;
    }
    return 2;  // 100 forks went through: no limit
  });
  auto lease = guard.pool().Claim();
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Apply({.pids = 8}));
  ASSERT_TRUE(lease->Attach(forker.pid()));
  forker.Go();
  int status = forker.Wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  // The forker itself counts: 7 children fit under pids.max=8, the 8th fork gets EAGAIN.
  EXPECT_EQ(WEXITSTATUS(status), 10 + 7);
  EXPECT_EQ(ListProcs(lease->dirs().pids)->size(), 7u);
  ASSERT_TRUE(lease->Release());  // kills the 7 orphans
  EXPECT_EQ(ListProcs(lease->dirs().pids)->size(), 0u);
}

TEST(CgroupPoolReal, LeaseOfAKilledProcessIsRecovered) {
  EMBER_REQUIRE_PRIVILEGES();
  PoolGuard guard(2);
  ASSERT_TRUE(guard.ok());
  ASSERT_TRUE(guard.pool().Fill());
  OrphanReaper reaper;  // the killed holder's sleeper becomes our child: we can reap it below
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const Hierarchy& h = guard.hierarchy();
  PoolOptions options = guard.options();
  Child holder([&] {
    // The sleeper exists before the claim so that it does not inherit the lease's lock fd.
    pid_t sleeper = ::fork();
    if (sleeper == 0) {
      for (;;) ::pause();
    }
    auto pool = Pool::Open(h, options);
    if (!pool) return 3;
    auto lease = pool->Claim();
    if (!lease || !lease->Attach(sleeper)) return 4;
    (void)!::write(report[1], &sleeper, sizeof sleeper);
    for (;;) ::pause();
  });
  ::close(report[1]);
  holder.Go();
  pid_t sleeper = -1;
  ASSERT_EQ(::read(report[0], &sleeper, sizeof sleeper), (ssize_t)sizeof sleeper);
  ::close(report[0]);
  std::string lock = guard.options().lock_dir + "/pool-0.lock";
  EXPECT_EQ(Read(lock), "claimed " + std::to_string(holder.pid()));
  EXPECT_EQ(*guard.pool().CountFree(), 1u);

  ASSERT_EQ(::kill(holder.pid(), SIGKILL), 0);
  holder.Wait();
  EXPECT_EQ(*guard.pool().CountFree(), 2u);  // the lock died with its holder
  SlotDirs dirs = DirsOf(h, guard.options().name, "pool-0");
  EXPECT_TRUE(ProcsContain(dirs.pids, sleeper));

  auto reset = guard.pool().CleanupStale();
  ASSERT_TRUE(reset) << reset.error().ToString();
  EXPECT_EQ(*reset, 1u);
  EXPECT_EQ(Read(lock), "free");
  for (const auto& dir : dirs.Distinct()) EXPECT_EQ(Read(dir + "/cgroup.procs"), "") << dir;
  int status = 0;
  ASSERT_EQ(::waitpid(sleeper, &status, 0), sleeper);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  auto lease = guard.pool().Claim();
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->slot(), "pool-0");
}

}  // namespace
}  // namespace ember::cgroup
