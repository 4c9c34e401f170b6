// Pool and Lease against fixture trees: a fake mountinfo that points at a temp dir, and a mkdir
// hook that fills each new directory with the control files cgroupfs would show.
#include "sandbox/cgroup/pool.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "base/fs.h"

namespace ember::cgroup {
namespace {

std::string Read(const std::string& path) {
  auto text = ReadFile(path);
  return text ? *text : "<" + text.error().ToString() + ">";
}

// Rewrites a file in place (no rename: an fd the code under test holds must see the change).
void Put(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

class CgroupFixture : public ::testing::TestWithParam<Version> {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-cgpool-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    std::string mountinfo;
    if (v2()) {
      MakeDirs(dir_ + "/unified");
      Put(dir_ + "/unified/cgroup.controllers", "cpuset cpu io memory pids\n");
      Put(dir_ + "/unified/cgroup.subtree_control", "");
      Put(dir_ + "/unified/cgroup.procs", "");
      mountinfo = "41 31 0:38 / " + dir_ + "/unified rw - cgroup2 cgroup2 rw\n";
    } else {
      int id = 32;
      for (const char* c : {"memory", "cpu", "pids"}) {
        MakeDirs(dir_ + "/" + c);
        mountinfo += std::to_string(id++) + " 31 0:29 / " + dir_ + "/" + c +
                     " rw,relatime - cgroup cgroup rw," + c + "\n";
      }
    }
    Put(dir_ + "/mountinfo", mountinfo);
    auto h = DetectHierarchy(dir_ + "/mountinfo");
    ASSERT_TRUE(h) << h.error().ToString();
    hierarchy_ = *h;
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  bool v2() const { return GetParam() == Version::kV2; }

  // What cgroupfs puts in a new directory, for the controller(s) of the hierarchy it is in.
  Status FillControlFiles(const std::string& dir) {
    auto put = [&](const std::string& f, const std::string& v) -> Status {
      std::ofstream out(dir + "/" + f, std::ios::trunc);
      out << v;
      if (!out.good()) return Fail(ErrorCode::kIo, "fixture: write " + dir + "/" + f);
      return Ok();
    };
    EMBER_TRY(put("cgroup.procs", ""));
    if (v2()) {
      for (auto [f, v] : std::vector<std::pair<std::string, std::string>>{
               {"cgroup.subtree_control", ""},
               {"cgroup.kill", ""},
               {"memory.max", "max\n"},
               {"memory.swap.max", "max\n"},
               {"memory.peak", "0\n"},
               {"memory.current", "0\n"},
               {"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
               {"cpu.max", "max 100000\n"},
               {"pids.max", "max\n"}}) {
        EMBER_TRY(put(f, v));
      }
    } else if (dir.find("/memory/") != std::string::npos) {
      for (auto [f, v] : std::vector<std::pair<std::string, std::string>>{
               {"memory.limit_in_bytes", "9223372036854771712\n"},
               {"memory.memsw.limit_in_bytes", "9223372036854771712\n"},
               {"memory.max_usage_in_bytes", "123\n"},
               {"memory.force_empty", ""},
               {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}}) {
        EMBER_TRY(put(f, v));
      }
    } else if (dir.find("/cpu/") != std::string::npos) {
      EMBER_TRY(put("cpu.cfs_period_us", "100000\n"));
      EMBER_TRY(put("cpu.cfs_quota_us", "-1\n"));
    } else {
      EMBER_TRY(put("pids.max", "max\n"));
    }
    return Ok();
  }

  PoolOptions Options(size_t target = 2) {
    PoolOptions o;
    o.name = "ember-t";
    o.lock_dir = dir_ + "/locks";
    o.target_free = target;
    o.release_timeout = std::chrono::milliseconds(50);
    o.after_mkdir = [this](const std::string& d) { return FillControlFiles(d); };
    return o;
  }

  Pool OpenPool(size_t target = 2) {
    auto pool = Pool::Open(hierarchy_, Options(target));
    EXPECT_TRUE(pool) << pool.error().ToString();
    return std::move(*pool);
  }

  std::string MemDir(const std::string& slot) {
    return hierarchy_.RootFor(Controller::kMemory) + "/ember-t/" + slot;
  }
  // The lock file's record, without its padding.
  std::string State(const std::string& slot) {
    std::string s = Read(dir_ + "/locks/" + slot + ".lock");
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
    return s;
  }

  std::string dir_;
  Hierarchy hierarchy_;
};

TEST_P(CgroupFixture, OpenCreatesParentsAndEnablesV2Controllers) {
  Pool pool = OpenPool();
  for (const auto& root : hierarchy_.Roots()) EXPECT_TRUE(PathExists(root + "/ember-t")) << root;
  if (v2()) {
    EXPECT_EQ(Read(dir_ + "/unified/cgroup.subtree_control"), "+memory +cpu +pids");
    EXPECT_EQ(Read(dir_ + "/unified/ember-t/cgroup.subtree_control"), "+memory +cpu +pids");
  } else {
    EXPECT_EQ(hierarchy_.Roots().size(), 3u);
  }
}

TEST_P(CgroupFixture, SubtreeControlOnlyWrittenWhenNeeded) {
  if (!v2()) {
    // v1 has no subtree_control: nothing of the kind may appear.
    Pool pool = OpenPool();
    for (const auto& root : hierarchy_.Roots()) {
      EXPECT_FALSE(PathExists(root + "/cgroup.subtree_control")) << root;
      EXPECT_FALSE(PathExists(root + "/ember-t/cgroup.subtree_control")) << root;
    }
    return;
  }
  Put(dir_ + "/unified/cgroup.subtree_control", "cpu memory pids io\n");
  Pool pool = OpenPool();
  EXPECT_EQ(Read(dir_ + "/unified/cgroup.subtree_control"), "cpu memory pids io\n");
}

TEST_P(CgroupFixture, FillCreatesFreeSlotsUpToTarget) {
  Pool pool = OpenPool(3);
  auto made = pool.Fill();
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_EQ(*made, 3u);
  EXPECT_EQ(*pool.Slots(), (std::vector<std::string>{"pool-0", "pool-1", "pool-2"}));
  EXPECT_EQ(*pool.CountFree(), 3u);
  std::vector<std::string> slots = *pool.Slots();
  for (const auto& slot : slots) {
    EXPECT_EQ(State(slot), "free");
    for (const auto& root : hierarchy_.Roots()) {
      EXPECT_TRUE(PathExists(root + "/ember-t/" + slot + "/cgroup.procs")) << root << " " << slot;
    }
  }
  EXPECT_EQ(*pool.Fill(), 0u);
}

TEST_P(CgroupFixture, ClaimTakesAPreCreatedSlotAndCreatesOnlyWhenEmpty) {
  Pool pool = OpenPool(2);
  ASSERT_TRUE(pool.Fill());
  auto a = pool.Claim();
  ASSERT_TRUE(a) << a.error().ToString();
  EXPECT_EQ(a->slot(), "pool-0");
  EXPECT_EQ(State("pool-0"), "claimed " + std::to_string(::getpid()));
  EXPECT_EQ(pool.Slots()->size(), 2u);  // nothing created
  EXPECT_EQ(a->v2_dir_fd() >= 0, v2());
  auto b = pool.Claim();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->slot(), "pool-1");
  EXPECT_EQ(*pool.CountFree(), 0u);
  auto c = pool.Claim();  // pool empty: made on the spot
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->slot(), "pool-2");
  EXPECT_EQ(pool.Slots()->size(), 3u);
  ASSERT_TRUE(a->Release());
  EXPECT_EQ(State("pool-0"), "free");
  EXPECT_FALSE(a->held());
  auto d = pool.Claim();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->slot(), "pool-0");
}

TEST_P(CgroupFixture, FillTrimsABurstsSlotsAndTheNextBurstMakesTheSameOnesAgain) {
  Pool pool = OpenPool(1);
  ASSERT_TRUE(pool.Fill());
  {
    std::vector<Lease> burst;
    for (int i = 0; i < 4; ++i) {
      auto lease = pool.Claim();
      ASSERT_TRUE(lease) << lease.error().ToString();
      burst.push_back(std::move(*lease));
    }
  }  // released
  ASSERT_TRUE(pool.Fill());
  EXPECT_EQ(*pool.Slots(), (std::vector<std::string>{"pool-0"}));  // one free kept
  EXPECT_EQ(State("pool-3"), "free");  // a removed slot's record stays for the next burst
  std::vector<Lease> again;
  for (int i = 0; i < 4; ++i) {
    auto lease = pool.Claim();
    ASSERT_TRUE(lease) << lease.error().ToString();
    again.push_back(std::move(*lease));
  }
  EXPECT_EQ(*pool.Slots(), (std::vector<std::string>{"pool-0", "pool-1", "pool-2", "pool-3"}));
}

TEST_P(CgroupFixture, TwoPoolsCompeteThroughLocks) {
  Pool first = OpenPool(2);
  Pool second = OpenPool(2);
  ASSERT_TRUE(first.Fill());
  auto a = first.Claim();
  auto b = second.Claim();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->slot(), "pool-0");
  EXPECT_EQ(b->slot(), "pool-1");
  auto c = second.Claim();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->slot(), "pool-2");
  { Lease gone = std::move(*a); }  // the destructor releases
  auto d = second.Claim();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->slot(), "pool-0");
}

TEST_P(CgroupFixture, AnExclusivePoolRefusesASecondExclusiveOwner) {
  PoolOptions exclusive = Options(2);
  exclusive.exclusive = true;
  auto daemon = Pool::Open(hierarchy_, exclusive);
  ASSERT_TRUE(daemon) << daemon.error().ToString();
  auto second = Pool::Open(hierarchy_, exclusive);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), ErrorCode::kBusy);
  EXPECT_NE(second.error().message().find("another ember daemon"), std::string::npos)
      << second.error().message();
  // A CLI user of the same pool (ember run) shares it.
  EXPECT_TRUE(Pool::Open(hierarchy_, Options(2)));
  // The owner gone, the next daemon may take it.
  { Pool gone = std::move(*daemon); }
  EXPECT_TRUE(Pool::Open(hierarchy_, exclusive));
}

TEST_P(CgroupFixture, ApplyWritesLimitsAndResetsUnsetOnes) {
  Pool pool = OpenPool(1);
  auto lease = pool.Claim();
  ASSERT_TRUE(lease);
  sandbox::CgroupLimits limits{128ULL << 20, 0.5, 64};
  ASSERT_TRUE(lease->Apply(limits));
  const SlotDirs& d = lease->dirs();
  if (v2()) {
    EXPECT_EQ(Read(d.memory + "/memory.max"), "134217728");
    EXPECT_EQ(Read(d.memory + "/memory.swap.max"), "0");
    EXPECT_EQ(Read(d.cpu + "/cpu.max"), "50000 100000");
  } else {
    EXPECT_EQ(Read(d.memory + "/memory.limit_in_bytes"), "134217728");
    EXPECT_EQ(Read(d.memory + "/memory.memsw.limit_in_bytes"), "134217728");
    EXPECT_EQ(Read(d.cpu + "/cpu.cfs_quota_us"), "50000");
  }
  EXPECT_EQ(Read(d.pids + "/pids.max"), "64");
  ASSERT_TRUE(lease->Apply({}));
  EXPECT_EQ(Read(d.pids + "/pids.max"), "max");
  EXPECT_EQ(Read(d.memory + (v2() ? "/memory.max" : "/memory.limit_in_bytes")),
            v2() ? "max" : "-1");
}

TEST_P(CgroupFixture, AttachWritesEveryHierarchyAndReleaseNeverKillsOutsiders) {
  Pool pool = OpenPool(1);
  auto lease = pool.Claim();
  ASSERT_TRUE(lease);
  // This test process is listed in the fake cgroup.procs but is not in the slot: Release must
  // not signal it, and must give up with an error that names the cgroup.
  ASSERT_TRUE(lease->Attach(::getpid()));
  for (const auto& d : lease->dirs().Distinct()) {
    EXPECT_EQ(Read(d + "/cgroup.procs"), std::to_string(::getpid())) << d;
  }
  auto released = lease->Release();
  ASSERT_FALSE(released);
  EXPECT_EQ(released.error().code(), ErrorCode::kBusy);
  EXPECT_NE(released.error().message().find("/ember-t/pool-0 still has processes"),
            std::string::npos)
      << released.error().message();
  EXPECT_FALSE(lease->held());
  EXPECT_EQ(State("pool-0"), "claimed " + std::to_string(::getpid()));  // stays dirty
  EXPECT_FALSE(lease->Attach(1));
}

TEST_P(CgroupFixture, StaleSlotIsResetByCleanupAndByClaim) {
  Pool pool = OpenPool(2);
  ASSERT_TRUE(pool.Fill());
  // What a crashed holder leaves: the record says claimed, the lock is free.
  Put(dir_ + "/locks/pool-1.lock", "claimed 999999\n");
  auto reset = pool.CleanupStale();
  ASSERT_TRUE(reset) << reset.error().ToString();
  EXPECT_EQ(*reset, 1u);
  EXPECT_EQ(State("pool-1"), "free");
  EXPECT_EQ(*pool.CleanupStale(), 0u);

  // A crash during creation: record "creating", one hierarchy's directory missing.
  Put(dir_ + "/locks/pool-0.lock", "creating\n");
  std::string cpu_dir = hierarchy_.RootFor(Controller::kCpu) + "/ember-t/pool-0";
  if (!v2()) {
    ASSERT_TRUE(RemoveTree(cpu_dir));
  }
  auto lease = pool.Claim();
  ASSERT_TRUE(lease) << lease.error().ToString();
  EXPECT_EQ(lease->slot(), "pool-0");
  EXPECT_TRUE(PathExists(cpu_dir + (v2() ? "/cpu.max" : "/cpu.cfs_quota_us")));
}

TEST_P(CgroupFixture, CleanupSkipsLiveLeases) {
  Pool pool = OpenPool(1);
  auto lease = pool.Claim();
  ASSERT_TRUE(lease);
  EXPECT_EQ(*pool.CleanupStale(), 0u);
  EXPECT_TRUE(lease->held());
}

TEST_P(CgroupFixture, OomKillsAndPeakCountFromClaim) {
  Pool pool = OpenPool(1);
  ASSERT_TRUE(pool.Fill());
  std::string events = v2() ? "/memory.events" : "/memory.oom_control";
  std::string prefix = v2() ? "low 0\nhigh 0\nmax 4\noom 3\n" : "oom_kill_disable 0\nunder_oom 0\n";
  Put(MemDir("pool-0") + events, prefix + "oom_kill 3\n");
  auto lease = pool.Claim();
  ASSERT_TRUE(lease);
  EXPECT_EQ(*lease->OomKills(), 0u);
  Put(MemDir("pool-0") + events, prefix + "oom_kill 5\n");
  EXPECT_EQ(*lease->OomKills(), 2u);
  if (!v2()) {
    EXPECT_EQ(Read(MemDir("pool-0") + "/memory.max_usage_in_bytes"), "0");  // reset
  }
  Put(MemDir("pool-0") + (v2() ? "/memory.peak" : "/memory.max_usage_in_bytes"), "4096\n");
  auto peak = lease->MemoryPeakBytes();
  ASSERT_TRUE(peak) << peak.error().ToString();
  EXPECT_EQ(*peak, 4096u);
}

TEST_P(CgroupFixture, DestroyRemovesTheTreeUnlessALeaseIsLive) {
  Pool pool = OpenPool(2);
  ASSERT_TRUE(pool.Fill());
  {
    auto lease = pool.Claim();
    ASSERT_TRUE(lease);
    auto busy = pool.Destroy();
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code(), ErrorCode::kBusy);
    EXPECT_NE(busy.error().message().find("pool-0"), std::string::npos);
  }
  ASSERT_TRUE(pool.Destroy());
  for (const auto& root : hierarchy_.Roots()) EXPECT_FALSE(PathExists(root + "/ember-t")) << root;
  EXPECT_FALSE(PathExists(dir_ + "/locks/pool-0.lock"));
}

TEST_P(CgroupFixture, RejectsBadOptions) {
  PoolOptions o = Options();
  o.name = "../escape";
  EXPECT_FALSE(Pool::Open(hierarchy_, o));
  o = Options();
  o.lock_dir = "";
  EXPECT_FALSE(Pool::Open(hierarchy_, o));
}

TEST_P(CgroupFixture, PoolWithoutMemoryCgroupsLimitsCpuAndPidsOnly) {
  PoolOptions o = Options(1);
  o.memory = false;
  auto pool = Pool::Open(hierarchy_, o);
  if (v2()) {
    ASSERT_FALSE(pool);
    EXPECT_EQ(pool.error().code(), ErrorCode::kUnsupported);
    EXPECT_NE(pool.error().message().find("needs cgroup v1"), std::string::npos);
    return;
  }
  ASSERT_TRUE(pool) << pool.error().ToString();
  EXPECT_FALSE(PathExists(hierarchy_.RootFor(Controller::kMemory) + "/ember-t"));
  auto lease = pool->Claim();
  ASSERT_TRUE(lease) << lease.error().ToString();
  const SlotDirs& d = lease->dirs();
  EXPECT_TRUE(d.memory.empty());
  EXPECT_TRUE(PathExists(d.cpu));
  EXPECT_FALSE(PathExists(MemDir(lease->slot())));
  ASSERT_TRUE(lease->Apply({128ULL << 20, 0.5, 64}));
  EXPECT_EQ(Read(d.cpu + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(Read(d.pids + "/pids.max"), "64");
  auto oom = lease->OomKills();
  ASSERT_TRUE(oom);
  EXPECT_EQ(*oom, 0u);
  auto peak = lease->MemoryPeakBytes();
  ASSERT_FALSE(peak);
  EXPECT_NE(peak.error().message().find("no memory cgroup of its own"), std::string::npos);
  auto slots = pool->Slots();
  ASSERT_TRUE(slots);
  EXPECT_EQ(slots->size(), 1u);
  ASSERT_TRUE(lease->Release());
  ASSERT_TRUE(pool->Destroy());
  EXPECT_FALSE(PathExists(hierarchy_.RootFor(Controller::kCpu) + "/ember-t"));
}

TEST_P(CgroupFixture, LeasesHoldNoFileDescriptorOfTheirOwn) {
  Pool pool = OpenPool(0);
  auto open_fds = [] {
    auto entries = ListDirectory("/proc/self/fd");
    return entries ? entries->size() : 0;
  };
  size_t before = open_fds();
  std::vector<Lease> leases;
  for (int i = 0; i < 40; ++i) {
    auto lease = pool.Claim();
    ASSERT_TRUE(lease) << lease.error().ToString();
    leases.push_back(std::move(*lease));
  }
  // v2 leases keep the slot's directory and memory.peak open (for clone3 and the peak); v1
  // leases nothing: the claim is a byte lock in the pool's one lock file.
  EXPECT_EQ(open_fds(), before + (v2() ? 2 * leases.size() : 0));
  // The same process cannot take a slot twice; another pool (another open file) cannot either.
  Pool other = OpenPool(0);
  auto next = other.Claim();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->slot(), "pool-40");
  leases.clear();
  auto reused = pool.Claim();
  ASSERT_TRUE(reused);
  EXPECT_EQ(reused->slot(), "pool-0");
}

INSTANTIATE_TEST_SUITE_P(Versions, CgroupFixture, ::testing::Values(Version::kV1, Version::kV2),
                         [](const auto& info) {
                           return info.param == Version::kV1 ? std::string("V1")
                                                             : std::string("V2");
                         });

}  // namespace
}  // namespace ember::cgroup
