// The sandbox launcher on its own, without images or the CLI: a busybox rootfs directory (owned
// by the sandbox's id range, as an idmapped image would appear) as the overlay's lower layer.
#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/pool.h"
#include "sandbox/seccomp.h"
#include "util/fixtures.h"

namespace ember::sandbox {
namespace {

using ember::testing::RunCommand;
using ember::testing::TempDir;

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_PRIVILEGES();
    rootfs_ = tmp_.path() + "/rootfs";
    ember::testing::MakeBusyboxRootfs(rootfs_);
    ASSERT_EQ(RunCommand({"chown", "-R", "-h", "100000:100000", rootfs_}).exit_code, 0);
    staging_ = tmp_.path() + "/staging";
    ASSERT_TRUE(MakeDirs(staging_));
    auto hierarchy = cgroup::DetectHierarchy();
    ASSERT_TRUE(hierarchy) << hierarchy.error().ToString();
    cgroup::PoolOptions options;
    options.name = "ember-test-sandbox-" + std::to_string(::getpid());
    options.lock_dir = tmp_.path() + "/cgroup-locks";
    auto pool = cgroup::Pool::Open(*hierarchy, options);
    ASSERT_TRUE(pool) << pool.error().ToString();
    pool_.emplace(std::move(*pool));
    auto bpf = CompileSeccomp(SeccompPolicy::kStrict);
    ASSERT_TRUE(bpf) << bpf.error().ToString();
    seccomp_ = std::move(*bpf);
  }
  void TearDown() override {
    if (pool_) (void)pool_->Destroy();
  }

  SandboxSpec Spec(std::vector<std::string> argv) {
    SandboxSpec spec;
    spec.id = NewSandboxId();
    spec.lower_dirs = {rootfs_};
    spec.tmpfs_size = 8ULL << 20;
    spec.env = DefaultEnv();
    spec.rlimits = DefaultRlimits();
    spec.limits.memory_bytes = 64ULL << 20;
    spec.limits.pids = 64;
    spec.argv = std::move(argv);
    return spec;
  }

  struct Ran {
    ExitStatus status;
    std::string out;
    std::optional<LayerUsage> layer;
  };

  // Runs argv in a sandbox with stdout+stderr captured; fails the test if it cannot start.
  Ran RunIn(const SandboxSpec& spec, int control_fd = -1) {
    Ran ran;
    int pipefd[2];
    EXPECT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
    auto lease = pool_->Claim();
    EXPECT_TRUE(lease) << lease.error().ToString();
    if (!lease) return ran;
    EXPECT_TRUE(lease->Apply(spec.limits));
    StartOptions options{staging_, &seccomp_, {0, write_end.get(), write_end.get()}, control_fd};
    auto sandbox = Sandbox::Start(spec, std::move(*lease), options);
    EXPECT_TRUE(sandbox) << sandbox.error().ToString();
    if (!sandbox) return ran;
    write_end.reset();
    char buf[4096];
    ssize_t n;
    while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0) ran.out.append(buf, n);
    auto status = sandbox->Wait();
    EXPECT_TRUE(status);
    if (status) ran.status = *status;
    auto layer = sandbox->WritableLayer();
    if (layer) ran.layer = *layer;
    EXPECT_TRUE(sandbox->Destroy());
    return ran;
  }

  TempDir tmp_;
  std::string rootfs_;
  std::string staging_;
  std::optional<cgroup::Pool> pool_;
  BpfProgram seccomp_;
};

TEST_F(SandboxTest, CommandRunsAsPidOneAndRootOfItsOwnNamespaces) {
  auto ran = RunIn(Spec({"sh", "-c",
                         "echo pid=$$; id -u; cat /proc/self/uid_map; hostname; "
                         "stat -c %u /bin/busybox; ls /proc | grep -c '^[0-9]'"}));
  EXPECT_FALSE(ran.status.signaled);
  EXPECT_EQ(ran.status.code, 0) << ran.out;
  EXPECT_NE(ran.out.find("pid=1\n"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("\n0\n"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("100000"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("sb-"), std::string::npos) << ran.out;
}

TEST_F(SandboxTest, OnlyTheSandboxProcessesAreVisible) {
  auto ran = RunIn(Spec({"sh", "-c", "ls -d /proc/[0-9]* | wc -l"}));
  EXPECT_EQ(ran.status.code, 0);
  // sh, ls and wc at most: never the host's processes.
  EXPECT_LE(std::stoi(ran.out), 3) << ran.out;
}

TEST_F(SandboxTest, ExitCodeAndSignalArePassedThrough) {
  auto code = RunIn(Spec({"sh", "-c", "exit 42"}));
  EXPECT_FALSE(code.status.signaled);
  EXPECT_EQ(code.status.code, 42);
  auto killed = RunIn(Spec({"sh", "-c", "kill -TERM $$; sleep 5"}));
  // pid 1 ignores signals it has no handler for, even from itself: it exits by sleeping out.
  EXPECT_FALSE(killed.status.signaled);
}

TEST_F(SandboxTest, HostDirectoriesAreBoundReadOnlyAndTheControlFdIsFdThree) {
  std::string code = tmp_.path() + "/code";
  ASSERT_TRUE(MakeDirs(code));
  ASSERT_TRUE(WriteFileAtomic(code + "/handler.txt", "from the host\n"));
  ASSERT_EQ(::chmod(code.c_str(), 0755), 0);
  SandboxSpec spec = Spec({"sh", "-c",
                           "cat /opt/fn/code/handler.txt; echo x > /opt/fn/code/new 2>&1 || true; "
                           "echo via-control >&3"});
  spec.binds = {{code, "/opt/fn/code"}};
  int socks[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks), 0);
  UniqueFd ours(socks[0]), theirs(socks[1]);
  auto ran = RunIn(spec, theirs.get());
  theirs.reset();
  EXPECT_EQ(ran.status.ShellCode(), 0) << ran.out;
  EXPECT_NE(ran.out.find("from the host\n"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("Read-only file system"), std::string::npos) << ran.out;
  EXPECT_FALSE(PathExists(code + "/new"));
  char buf[64] = {};
  ssize_t n = ::read(ours.get(), buf, sizeof buf - 1);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "via-control\n");
  // The mount point was made in the writable layer, not in the image.
  EXPECT_FALSE(PathExists(rootfs_ + "/opt"));
}

TEST_F(SandboxTest, OnlyTheInheritedFdsReachTheSandbox) {
  // An fd the parent holds without close-on-exec (as Boost.Asio's accepted connections are in
  // the daemon) must not leak into the sandbox.
  UniqueFd leaky(::open("/dev/null", O_RDONLY));
  ASSERT_GE(leaky.get(), 3);
  auto ran = RunIn(Spec({"sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"}));
  EXPECT_EQ(ran.status.code, 0) << ran.out;
  // 0-2, and 3: the directory ls reads.
  EXPECT_EQ(ran.out, "0 1 2 3 ") << "fd " << leaky.get() << " leaked";
}

TEST_F(SandboxTest, WritesGoToThePrivateLayerAndItsSizeIsCapped) {
  auto ran = RunIn(Spec({"sh", "-c",
                         "echo data > /etc/new && cat /etc/new && "
                         "dd if=/dev/zero of=/big bs=1M count=32 2>&1; echo dd=$?"}));
  EXPECT_NE(ran.out.find("data\n"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("No space left on device"), std::string::npos) << ran.out;
  ASSERT_TRUE(ran.layer);
  EXPECT_TRUE(ran.layer->full);
  EXPECT_EQ(ran.layer->size_bytes, 8ULL << 20);
  // The image itself is untouched.
  EXPECT_FALSE(PathExists(rootfs_ + "/etc/new"));
  EXPECT_FALSE(PathExists(rootfs_ + "/big"));
}

TEST_F(SandboxTest, DevIsMinimalAndProcIsMasked) {
  auto ran = RunIn(Spec({"sh", "-c",
                         "ls /dev | tr '\\n' ' '; echo; cat /proc/kcore 2>/dev/null | wc -c; "
                         "echo x > /proc/sys/kernel/hostname 2>&1 || echo ro-ok; "
                         "echo x > /dev/null && echo null-ok"}));
  EXPECT_EQ(ran.out.find("sda"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("null"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("urandom"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("pts"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("\n0\n"), std::string::npos) << "kcore must read empty: " << ran.out;
  EXPECT_NE(ran.out.find("ro-ok"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("null-ok"), std::string::npos) << ran.out;
}

TEST_F(SandboxTest, NetworkNoneLeavesLoopbackDown) {
  // Connecting to a closed port on 127.0.0.1 is refused when lo is up, unreachable when down.
  auto none = Spec({"sh", "-c", "busybox nc 127.0.0.1 9 </dev/null 2>&1"});
  none.network = NetworkMode::kNone;
  auto down = RunIn(none);
  EXPECT_NE(down.out.find("unreachable"), std::string::npos) << down.out;
  auto up = RunIn(Spec({"sh", "-c", "busybox nc 127.0.0.1 9 </dev/null 2>&1"}));
  EXPECT_NE(up.out.find("refused"), std::string::npos) << up.out;
}

TEST_F(SandboxTest, RunsAsTheRequestedUserWithoutCapabilities) {
  auto spec = Spec({"sh", "-c",
                    "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; "
                    "grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status; pwd"});
  spec.uid = 1000;
  spec.gid = 1000;
  spec.workdir = "/home/user";
  auto ran = RunIn(spec);
  EXPECT_EQ(ran.status.code, 0) << ran.out;
  EXPECT_EQ(ran.out.rfind("1000\n1000\n", 0), 0u) << ran.out;
  EXPECT_NE(ran.out.find("CapEff:\t0000000000000000"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("CapBnd:\t0000000000000000"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("NoNewPrivs:\t1"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("Seccomp:\t2"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("/home/user"), std::string::npos) << ran.out;
}

TEST_F(SandboxTest, MissingCommandIsAnExecFailureNamingIt) {
  auto lease = pool_->Claim();
  ASSERT_TRUE(lease);
  StartOptions options{staging_, &seccomp_, {0, 1, 2}};
  auto sandbox = Sandbox::Start(Spec({"no-such-command"}), std::move(*lease), options);
  ASSERT_FALSE(sandbox);
  EXPECT_EQ(sandbox.error().code(), ErrorCode::kExecFailed);
  EXPECT_EQ(sandbox.error().sys_errno(), ENOENT);
  EXPECT_NE(sandbox.error().ToString().find("no-such-command"), std::string::npos);
  // The failed start returned its cgroup: one is free again.
  EXPECT_GE(*pool_->CountFree(), 1u);
}

TEST_F(SandboxTest, BadLowerDirFailsAtTheOverlayStepAndNamesIt) {
  auto lease = pool_->Claim();
  ASSERT_TRUE(lease);
  auto spec = Spec({"true"});
  spec.lower_dirs = {tmp_.path() + "/does-not-exist"};
  StartOptions options{staging_, &seccomp_, {0, 1, 2}};
  auto sandbox = Sandbox::Start(spec, std::move(*lease), options);
  ASSERT_FALSE(sandbox);
  EXPECT_NE(sandbox.error().ToString().find("mount overlay"), std::string::npos)
      << sandbox.error().ToString();
}

TEST_F(SandboxTest, ProcessTreeIsKilledWithTheSandboxAndNothingIsLeft) {
  auto lease = pool_->Claim();
  ASSERT_TRUE(lease);
  std::string slot = lease->slot();
  StartOptions options{staging_, &seccomp_, {0, 1, 2}};
  auto sandbox = Sandbox::Start(Spec({"sh", "-c", "sleep 100 & sleep 100 & sleep 100"}),
                                std::move(*lease), options);
  ASSERT_TRUE(sandbox) << sandbox.error().ToString();
  pid_t pid = sandbox->pid();
  ASSERT_TRUE(sandbox->Destroy());
  EXPECT_NE(::kill(pid, 0), 0);
  auto procs = ReadFile(pool_->hierarchy().Roots().front() + "/" + pool_->options().name + "/" +
                        slot + "/cgroup.procs");
  ASSERT_TRUE(procs);
  EXPECT_EQ(*procs, "");
  auto mounts = ReadFile("/proc/self/mountinfo");
  EXPECT_EQ(mounts->find(staging_), std::string::npos);
}

}  // namespace
}  // namespace ember::sandbox
