// The network-namespace pool against the real kernel: an owner process in a fresh user namespace
// (standing in for a fork-boot template), a pool for it, and checks from the kernel's side of
// every namespace it hands out: its type, its owner, its loopback, and that the helper process
// goes away with the pool. Only processes these tests started are ever signalled.
#include "sandbox/netns_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "base/fs.h"
#include "sandbox/sandbox.h"
#include "sys/syscalls.h"
#include "util/fixtures.h"

namespace ember::sandbox {
namespace {

// A process alone in a new user namespace (ids mapped like a sandbox's), blocked until the
// test closes `release` or ends; the ChildProcess kills and reaps it either way.
struct Owner {
  ChildProcess process;
  UniqueFd release;
  pid_t pid() const { return process.pid(); }
};

Result<Owner> StartOwner() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return FailErrno("pipe2");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  int pidfd = -1;
  struct clone_args args {};
  args.flags = CLONE_NEWUSER | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = sys::Clone3(&args);
  if (pid < 0) return FailErrno("clone3 owner into a new user namespace");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(write_end.get());
    char byte;
    while (::read(read_end.get(), &byte, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  Owner owner{ChildProcess(static_cast<pid_t>(pid), UniqueFd(pidfd)), std::move(write_end)};
  EMBER_TRY(WriteIdMaps(owner.pid(), IdRange{}));
  return owner;
}

// Runs `body` in a forked child (single-threaded, so it may join a user namespace) and returns
// its exit code, or -1 if it could not run or was killed.
template <typename Body>
int ExitCodeInChild(Body body) {
  int pidfd = -1;
  struct clone_args args {};
  args.flags = CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = sys::Clone3(&args);
  if (pid < 0) return -1;
  if (pid == 0) ::_exit(body());
  ChildProcess child(static_cast<pid_t>(pid), UniqueFd(pidfd));
  auto status = child.Wait();
  if (!status || status->signaled) return -1;
  return status->code;
}

constexpr int kLoopbackDown = 0;
constexpr int kLoopbackUp = 1;

// Whether `lo` is up in `net_ns`, seen by a process that joined it the way a fork-booted child
// does: from inside the owner's user namespace. Other values name the step that failed.
int LoopbackState(int user_ns, int net_ns) {
  return ExitCodeInChild([=] {
    if (::setns(user_ns, CLONE_NEWUSER) != 0) return 10;
    if (::setns(net_ns, CLONE_NEWNET) != 0) return 11;
    int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return 12;
    struct ifreq ifr = {};
    std::memcpy(ifr.ifr_name, "lo", 3);
    if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return 13;
    return (ifr.ifr_flags & IFF_UP) != 0 ? kLoopbackUp : kLoopbackDown;
  });
}

struct stat StatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

struct stat FstatOf(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
  return st;
}

// Our children other than `except`, from /proc/<pid>/stat's ppid field.
std::set<pid_t> ChildrenOfThisProcess(pid_t except) {
  std::set<pid_t> children;
  auto entries = ListDirectory("/proc");
  if (!entries) return children;
  for (const auto& name : *entries) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto stat = ReadFile("/proc/" + name + "/stat");
    if (!stat) continue;
    // pid (comm) state ppid …; comm may hold spaces and parentheses, so parse from the last ')'.
    auto close = stat->rfind(')');
    if (close == std::string::npos) continue;
    pid_t ppid = 0;
    char state = 0;
    if (std::sscanf(stat->c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    pid_t pid = std::stoi(name);
    if (ppid == ::getpid() && pid != except) children.insert(pid);
  }
  return children;
}

// The one child started since `before` was taken, or -1 if there is not exactly one.
pid_t TheNewChild(const std::set<pid_t>& before, pid_t except) {
  std::set<pid_t> now = ChildrenOfThisProcess(except);
  for (pid_t pid : before) now.erase(pid);
  return now.size() == 1 ? *now.begin() : -1;
}

size_t OpenFdCount() {
  auto fds = ListDirectory("/proc/self/fd");
  EXPECT_TRUE(fds) << fds.error().ToString();
  return fds ? fds->size() : 0;
}

// Polls `done` until it holds or a generous deadline passes (no timing is asserted).
template <typename Done>
bool Eventually(Done done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class NetnsPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_PRIVILEGES();
    auto owner = StartOwner();
    ASSERT_TRUE(owner) << owner.error().ToString();
    owner_.emplace(std::move(*owner));
    owner_user_ns_path_ = "/proc/" + std::to_string(owner_->pid()) + "/ns/user";
    owner_user_ns_.reset(::open(owner_user_ns_path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(owner_user_ns_) << owner_user_ns_path_ << ": " << std::strerror(errno);
  }

  std::unique_ptr<NetnsPool> MakePool(NetworkMode mode, size_t min_ready, size_t max_ready = 64) {
    NetnsPoolOptions options;
    options.owner_pid = owner_->pid();
    options.mode = mode;
    options.min_ready = min_ready;
    options.max_ready = max_ready;
    auto pool = NetnsPool::Create(options);
    EXPECT_TRUE(pool) << pool.error().ToString();
    return pool ? std::move(*pool) : nullptr;
  }

  // Takes `count` namespaces and checks each is a network namespace of the owner's user
  // namespace, distinct from the others.
  std::vector<UniqueFd> TakeAndCheck(NetnsPool& pool, size_t count) {
    std::vector<UniqueFd> taken;
    std::set<ino_t> inodes;
    const struct stat owner_ns = StatOf(owner_user_ns_path_);
    for (size_t i = 0; i < count; ++i) {
      auto fd = pool.Take();
      EXPECT_TRUE(fd) << fd.error().ToString();
      if (!fd) break;
      EXPECT_EQ(::ioctl(fd->get(), NS_GET_NSTYPE), CLONE_NEWNET) << "namespace " << i;
      EXPECT_EQ(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC) << "namespace " << i;
      EXPECT_EQ(::fcntl(fd->get(), F_GETFL) & O_ACCMODE, O_RDONLY) << "namespace " << i;
      UniqueFd user_ns(::ioctl(fd->get(), NS_GET_USERNS));
      EXPECT_TRUE(user_ns) << "NS_GET_USERNS of namespace " << i << ": " << std::strerror(errno);
      if (user_ns) {
        const struct stat st = FstatOf(user_ns.get());
        EXPECT_EQ(st.st_ino, owner_ns.st_ino) << "owner of namespace " << i;
        EXPECT_EQ(st.st_dev, owner_ns.st_dev) << "owner of namespace " << i;
      }
      inodes.insert(FstatOf(fd->get()).st_ino);
      taken.push_back(std::move(*fd));
    }
    EXPECT_EQ(inodes.size(), taken.size()) << "namespaces handed out twice";
    return taken;
  }

  std::optional<Owner> owner_;
  std::string owner_user_ns_path_;
  UniqueFd owner_user_ns_;
};

TEST_F(NetnsPoolTest, LoopbackNamespacesBelongToTheOwnerWithLoUp) {
  auto pool = MakePool(NetworkMode::kLoopback, 2);
  ASSERT_TRUE(pool);
  auto taken = TakeAndCheck(*pool, 10);
  ASSERT_EQ(taken.size(), 10u);
  for (size_t i = 0; i < taken.size(); ++i) {
    EXPECT_EQ(LoopbackState(owner_user_ns_.get(), taken[i].get()), kLoopbackUp)
        << "namespace " << i;
  }
}

TEST_F(NetnsPoolTest, NoneModeLeavesLoDown) {
  auto pool = MakePool(NetworkMode::kNone, 2);
  ASSERT_TRUE(pool);
  auto taken = TakeAndCheck(*pool, 4);
  ASSERT_EQ(taken.size(), 4u);
  for (size_t i = 0; i < taken.size(); ++i) {
    EXPECT_EQ(LoopbackState(owner_user_ns_.get(), taken[i].get()), kLoopbackDown)
        << "namespace " << i;
  }
}

TEST_F(NetnsPoolTest, BackgroundKeepsMinReady) {
  auto pool = MakePool(NetworkMode::kLoopback, 3);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 3; }))
      << "ready: " << pool->Stats().ready;
  NetnsPoolStats stats = pool->Stats();
  EXPECT_EQ(stats.target, 3u);
  EXPECT_EQ(stats.created, 3u);
  EXPECT_EQ(stats.taken, 0u);
  EXPECT_EQ(stats.misses, 0u);

  auto taken = TakeAndCheck(*pool, 2);
  stats = pool->Stats();
  EXPECT_EQ(stats.taken, 2u);
  EXPECT_EQ(stats.misses, 0u);  // nobody else took any: both were ready
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 3; }));
  EXPECT_EQ(pool->Stats().created, 5u);
}

TEST_F(NetnsPoolTest, MissCreatesAtOnceAndRaisesTheTarget) {
  // min_ready 0: nothing is made ahead, so the first Take must miss.
  auto pool = MakePool(NetworkMode::kLoopback, 0, 8);
  ASSERT_TRUE(pool);
  NetnsPoolStats stats = pool->Stats();
  EXPECT_EQ(stats.target, 0u);
  EXPECT_EQ(stats.ready, 0u);

  auto first = TakeAndCheck(*pool, 1);
  stats = pool->Stats();
  EXPECT_EQ(stats.taken, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_GE(stats.created, 1u);
  EXPECT_EQ(stats.target, 1u);
  // The raised target is refilled in the background.
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 1; }));
  EXPECT_EQ(pool->Stats().created, 2u);

  auto second = TakeAndCheck(*pool, 1);
  stats = pool->Stats();
  EXPECT_EQ(stats.taken, 2u);
  EXPECT_EQ(stats.misses, 1u);  // that one was ready
}

TEST_F(NetnsPoolTest, ConcurrentTakesGetDistinctNamespaces) {
  auto pool = MakePool(NetworkMode::kLoopback, 1, 16);
  ASSERT_TRUE(pool);
  constexpr int kThreads = 4;
  constexpr int kEach = 8;
  std::vector<std::vector<UniqueFd>> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto fd = pool->Take();
        if (!fd) {
          errors[t] = fd.error().ToString();
          return;
        }
        results[t].push_back(std::move(*fd));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<ino_t> inodes;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    for (const auto& fd : results[t]) {
      EXPECT_EQ(::ioctl(fd.get(), NS_GET_NSTYPE), CLONE_NEWNET);
      inodes.insert(FstatOf(fd.get()).st_ino);
    }
  }
  EXPECT_EQ(inodes.size(), static_cast<size_t>(kThreads * kEach));
  NetnsPoolStats stats = pool->Stats();
  EXPECT_EQ(stats.taken, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_GE(stats.created, stats.taken);
  EXPECT_LE(stats.misses, stats.taken);
  EXPECT_GE(stats.target, 1u);
  EXPECT_LE(stats.target, 16u);
}

TEST_F(NetnsPoolTest, HelperLivesInTheOwnersUserNamespaceAndDiesWithThePool) {
  const size_t fds_before = OpenFdCount();
  const std::set<pid_t> before = ChildrenOfThisProcess(owner_->pid());
  // min_ready 0: the helper gets no request, so it holds no namespace fd while it is looked at.
  auto pool = MakePool(NetworkMode::kLoopback, 0);
  ASSERT_TRUE(pool);
  const pid_t helper = TheNewChild(before, owner_->pid());
  ASSERT_GT(helper, 0) << "expected exactly one new child: the helper";
  UniqueFd helper_pidfd(sys::PidfdOpen(helper));
  ASSERT_TRUE(helper_pidfd) << "pidfd_open " << helper << ": " << std::strerror(errno);

  const std::string proc = "/proc/" + std::to_string(helper);
  const struct stat helper_ns = StatOf(proc + "/ns/user");
  const struct stat owner_ns = StatOf(owner_user_ns_path_);
  EXPECT_EQ(helper_ns.st_ino, owner_ns.st_ino);
  // It holds stdio and its socket, nothing else of ours (the owner fd was closed after setns).
  auto fds = ListDirectory(proc + "/fd");
  ASSERT_TRUE(fds) << fds.error().ToString();
  size_t beyond_stdio = 0;
  for (const auto& fd : *fds) beyond_stdio += std::stoi(fd) > 2;
  EXPECT_EQ(beyond_stdio, 1u);

  pool.reset();
  // The pool reaped it: the pidfd reports the exit, and there is nothing left to wait for.
  struct pollfd pfd = {helper_pidfd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);
  siginfo_t info{};
  EXPECT_NE(::waitid(P_PIDFD, helper_pidfd.get(), &info, WEXITED | WNOHANG), 0);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_FALSE(PathExists(proc));
  helper_pidfd.reset();
  EXPECT_EQ(OpenFdCount(), fds_before) << "the pool left fds open";
}

TEST_F(NetnsPoolTest, TakeAfterTheHelperDiedFailsNamingIt) {
  const std::set<pid_t> before = ChildrenOfThisProcess(owner_->pid());
  auto pool = MakePool(NetworkMode::kLoopback, 0);
  ASSERT_TRUE(pool);
  const pid_t helper = TheNewChild(before, owner_->pid());
  ASSERT_GT(helper, 0) << "expected exactly one new child: the helper";
  UniqueFd helper_pidfd(sys::PidfdOpen(helper));
  ASSERT_TRUE(helper_pidfd) << std::strerror(errno);
  ASSERT_EQ(sys::PidfdSendSignal(helper_pidfd.get(), SIGKILL), 0) << std::strerror(errno);
  struct pollfd pfd = {helper_pidfd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 20000), 1);

  auto fd = pool->Take();
  ASSERT_FALSE(fd);
  EXPECT_NE(fd.error().ToString().find("netns helper"), std::string::npos) << fd.error().ToString();
  EXPECT_EQ(pool->Stats().taken, 0u);
  pool.reset();  // reaps the dead helper; must not hang or crash
}

TEST(NetnsPoolCreateTest, MissingOwnerFailsNamingIt) {
  EMBER_REQUIRE_PRIVILEGES();
  // pid_max itself is never a valid pid.
  auto pid_max = ReadFile("/proc/sys/kernel/pid_max");
  ASSERT_TRUE(pid_max) << pid_max.error().ToString();
  NetnsPoolOptions options;
  options.owner_pid = std::stoi(*pid_max);
  const size_t fds_before = OpenFdCount();
  auto pool = NetnsPool::Create(options);
  ASSERT_FALSE(pool);
  EXPECT_EQ(OpenFdCount(), fds_before);
  EXPECT_NE(pool.error().ToString().find("pid " + std::to_string(options.owner_pid)),
            std::string::npos)
      << pool.error().ToString();
  EXPECT_EQ(pool.error().code(), ErrorCode::kNotFound) << pool.error().ToString();
  std::printf("error: %s\n", pool.error().ToString().c_str());
}

TEST(NetnsPoolCreateTest, OwnerInOurUserNamespaceNeedsNoSetns) {
  EMBER_REQUIRE_PRIVILEGES();
  NetnsPoolOptions options;
  options.owner_pid = ::getpid();
  options.min_ready = 1;
  auto pool = NetnsPool::Create(options);
  ASSERT_TRUE(pool) << pool.error().ToString();
  auto fd = (*pool)->Take();
  ASSERT_TRUE(fd) << fd.error().ToString();
  EXPECT_EQ(::ioctl(fd->get(), NS_GET_NSTYPE), CLONE_NEWNET);
  UniqueFd user_ns(::ioctl(fd->get(), NS_GET_USERNS));
  ASSERT_TRUE(user_ns) << std::strerror(errno);
  EXPECT_EQ(FstatOf(user_ns.get()).st_ino, StatOf("/proc/self/ns/user").st_ino);
}

TEST(NetnsPoolCreateTest, RejectsMinAboveMax) {
  NetnsPoolOptions options;
  options.owner_pid = ::getpid();
  options.min_ready = 5;
  options.max_ready = 2;
  auto pool = NetnsPool::Create(options);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().code(), ErrorCode::kInvalidArgument) << pool.error().ToString();
}

}  // namespace
}  // namespace ember::sandbox
