#include "sandbox/seccomp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "base/fs.h"
#include "sandbox/seccomp_eval.h"

namespace ember::sandbox {
namespace {

constexpr uint32_t kAllow = SCMP_ACT_ALLOW;
constexpr uint32_t kEperm = SCMP_ACT_ERRNO(EPERM);
constexpr uint32_t kEnosys = SCMP_ACT_ERRNO(ENOSYS);

const BpfProgram& Strict() {
  static const BpfProgram program = [] {
    auto compiled = CompileSeccomp(SeccompPolicy::kStrict);
    if (!compiled) ADD_FAILURE() << compiled.error().ToString();
    return compiled ? *compiled : BpfProgram{};
  }();
  return program;
}

uint32_t Eval(int nr, std::initializer_list<uint64_t> args = {},
              uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data data{};
  data.nr = nr;
  data.arch = arch;
  size_t i = 0;
  for (uint64_t a : args) data.args[i++] = a;
  auto action = EvaluateSeccomp(Strict().instructions, data);
  EXPECT_TRUE(action.has_value()) << "malformed program";
  return action.value_or(0xdeadbeef);
}

int Nr(const std::string& name) { return seccomp_syscall_resolve_name(name.c_str()); }

TEST(SeccompPolicyTest, AllowedAndDeniedAreDisjointAndKnown) {
  const auto& table = GetPolicyTable(SeccompPolicy::kStrict);
  std::set<std::string> allowed;
  for (const auto& rule : table.rules) {
    EXPECT_NE(Nr(rule.name), __NR_SCMP_ERROR) << rule.name;
    if (rule.action == SCMP_ACT_ALLOW) allowed.insert(rule.name);
  }
  for (const auto& name : table.denied) {
    EXPECT_NE(Nr(name), __NR_SCMP_ERROR) << name;
    EXPECT_EQ(allowed.count(name), 0u) << name << " is both allowed and denied";
  }
  EXPECT_GT(allowed.size(), 200u);
}

TEST(SeccompPolicyTest, RenderIsStable) {
  const auto& table = GetPolicyTable(SeccompPolicy::kStrict);
  EXPECT_EQ(RenderPolicy(table), RenderPolicy(GetPolicyTable(SeccompPolicy::kStrict)));
  EXPECT_NE(RenderPolicy(table).find("clone3 errno(38)"), std::string::npos);
}

TEST(SeccompCompileTest, NonEmptyAndStable) {
  auto a = CompileSeccomp(SeccompPolicy::kStrict);
  auto b = CompileSeccomp(SeccompPolicy::kStrict);
  ASSERT_TRUE(a) << a.error().ToString();
  ASSERT_TRUE(b) << b.error().ToString();
  EXPECT_FALSE(a->instructions.empty());
  EXPECT_LE(a->instructions.size(), size_t{BPF_MAXINSNS});
  EXPECT_EQ(a->policy_hash.size(), 16u);
  EXPECT_EQ(a->policy_hash, b->policy_hash);
  EXPECT_EQ(SerializeBpf(*a), SerializeBpf(*b));
}

TEST(SeccompEvalTest, DeniedSyscallsGetEperm) {
  for (const auto& name : GetPolicyTable(SeccompPolicy::kStrict).denied) {
    EXPECT_EQ(Eval(Nr(name)), kEperm) << name;
  }
  EXPECT_EQ(Eval(Nr("clone3")), kEnosys);
}

TEST(SeccompEvalTest, PlainAllowedSyscallsPass) {
  for (const auto& rule : GetPolicyTable(SeccompPolicy::kStrict).rules) {
    if (rule.checks.empty()) {
      EXPECT_EQ(Eval(Nr(rule.name)), rule.action) << rule.name;
    }
  }
}

// Every syscall the policy allows whatever its arguments is decided by the kernel's action
// cache, once, when the filter is installed: a Python start makes ≈600 syscalls, none of which
// should run the filter. Only the syscalls with argument checks (ioctl, clone, socket, …) do.
TEST(SeccompEvalTest, PlainAllowedSyscallsAreCachedByTheKernel) {
  size_t cached = 0;
  for (const auto& rule : GetPolicyTable(SeccompPolicy::kStrict).rules) {
    if (!rule.checks.empty() || rule.action != SCMP_ACT_ALLOW) continue;
    EXPECT_TRUE(KernelCachesAllow(Strict().instructions, static_cast<uint32_t>(Nr(rule.name)),
                                  AUDIT_ARCH_X86_64))
        << rule.name;
    ++cached;
  }
  EXPECT_GT(cached, 200u);
  // Not for a foreign ABI, nor for a syscall whose arguments are checked or that is refused.
  EXPECT_FALSE(KernelCachesAllow(Strict().instructions, SYS_getpid, AUDIT_ARCH_I386));
  EXPECT_FALSE(KernelCachesAllow(Strict().instructions, SYS_ioctl, AUDIT_ARCH_X86_64));
  EXPECT_FALSE(KernelCachesAllow(Strict().instructions, SYS_mount, AUDIT_ARCH_X86_64));
}

TEST(SeccompEvalTest, ForeignArchitecturesGetEnosys) {
  EXPECT_EQ(Eval(0x40000000 | SYS_getpid), kEnosys);  // x32 ABI number
  EXPECT_EQ(Eval(0x40000000 | SYS_mount), kEnosys);
  EXPECT_EQ(Eval(20 /* i386 getpid */, {}, AUDIT_ARCH_I386), kEnosys);
  EXPECT_EQ(Eval(21 /* i386 mount */, {}, AUDIT_ARCH_I386), kEnosys);
  EXPECT_EQ(Eval(SYS_getpid, {}, AUDIT_ARCH_AARCH64), kEnosys);
}

TEST(SeccompEvalTest, IoctlComparesLow32Bits) {
  EXPECT_EQ(Eval(SYS_ioctl, {0, TCGETS}), kAllow);
  EXPECT_EQ(Eval(SYS_ioctl, {0, (1ULL << 32) | TCGETS}), kAllow);  // the kernel sees TCGETS
  EXPECT_EQ(Eval(SYS_ioctl, {3, 0xc0686611}), kAllow);  // PROCMAP_QUERY on a maps file it opened
  EXPECT_EQ(Eval(SYS_ioctl, {0, TIOCSTI}), kEperm);
  EXPECT_EQ(Eval(SYS_ioctl, {0, (0xffffffffULL << 32) | TIOCSTI}), kEperm);
  EXPECT_EQ(Eval(SYS_ioctl, {0, TIOCLINUX}), kEperm);
  EXPECT_EQ(Eval(SYS_ioctl, {0, TIOCSCTTY}), kEperm);
  for (uint32_t request : AllowedIoctls()) EXPECT_EQ(Eval(SYS_ioctl, {3, request}), kAllow);
}

TEST(SeccompEvalTest, CloneWithoutNamespaceFlagsOnly) {
  EXPECT_EQ(Eval(SYS_clone, {SIGCHLD}), kAllow);
  EXPECT_EQ(
      Eval(SYS_clone, {CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                       CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID}),
      kAllow);
  for (uint64_t ns : {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
                      CLONE_NEWIPC, CLONE_NEWCGROUP}) {
    EXPECT_EQ(Eval(SYS_clone, {ns | SIGCHLD}), kEperm) << std::hex << ns;
  }
}

TEST(SeccompEvalTest, SocketFamilies) {
  EXPECT_EQ(Eval(SYS_socket, {AF_UNIX, SOCK_STREAM}), kAllow);
  EXPECT_EQ(Eval(SYS_socket, {AF_INET, SOCK_STREAM | SOCK_CLOEXEC}), kAllow);
  EXPECT_EQ(Eval(SYS_socket, {AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK}), kAllow);
  EXPECT_EQ(Eval(SYS_socket, {AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */}), kAllow);
  EXPECT_EQ(Eval(SYS_socket, {AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */}), kEperm);
  EXPECT_EQ(Eval(SYS_socket, {AF_INET, SOCK_RAW, 1}), kEperm);
  EXPECT_EQ(Eval(SYS_socket, {AF_PACKET, SOCK_RAW}), kEperm);
  EXPECT_EQ(Eval(SYS_socket, {AF_VSOCK, SOCK_STREAM}), kEperm);
  EXPECT_EQ(Eval(SYS_socket, {AF_ALG, SOCK_SEQPACKET}), kEperm);
  EXPECT_EQ(Eval(SYS_socketpair, {AF_UNIX, SOCK_STREAM}), kAllow);
  EXPECT_EQ(Eval(SYS_socketpair, {AF_INET, SOCK_STREAM}), kEperm);
}

TEST(SeccompEvalTest, PersonalityHarmlessValuesOnly) {
  EXPECT_EQ(Eval(SYS_personality, {0xffffffff}), kAllow);
  EXPECT_EQ(Eval(SYS_personality, {0}), kAllow);
  EXPECT_EQ(Eval(SYS_personality, {0x0040000 /* ADDR_NO_RANDOMIZE */}), kEperm);
}

class SeccompCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-seccomp-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  std::string CachePath() const {
    return dir_ + "/cache/" + PolicyHash(SeccompPolicy::kStrict) + ".bpf";
  }
  std::string dir_;
};

TEST_F(SeccompCacheTest, RoundTrip) {
  auto first = LoadSeccomp(SeccompPolicy::kStrict, dir_ + "/cache");
  ASSERT_TRUE(first) << first.error().ToString();
  ASSERT_TRUE(PathExists(CachePath()));
  auto second = LoadSeccomp(SeccompPolicy::kStrict, dir_ + "/cache");
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(SerializeBpf(*first), SerializeBpf(*second));
  EXPECT_EQ(SerializeBpf(*first), SerializeBpf(Strict()));
}

TEST_F(SeccompCacheTest, CorruptFileIsDetectedAndRecompiled) {
  ASSERT_TRUE(LoadSeccomp(SeccompPolicy::kStrict, dir_ + "/cache"));
  const std::string good = *ReadFile(CachePath());
  const std::string hash = PolicyHash(SeccompPolicy::kStrict);
  std::string flipped = good;
  flipped[40] ^= 0x01;
  std::vector<std::pair<std::string, std::string>> cases = {
      {"flipped bit", flipped},
      {"truncated", good.substr(0, good.size() - 8)},
      {"odd size", good.substr(0, good.size() - 3)},
      {"empty", ""},
      {"header only", good.substr(0, 32)},
      {"bad magic", "X" + good.substr(1)},
  };
  for (const auto& [what, bytes] : cases) {
    EXPECT_FALSE(ParseBpf(bytes, hash)) << what;
    ASSERT_TRUE(WriteFileAtomic(CachePath(), bytes));
    auto loaded = LoadSeccomp(SeccompPolicy::kStrict, dir_ + "/cache");
    ASSERT_TRUE(loaded) << what << ": " << loaded.error().ToString();
    EXPECT_EQ(SerializeBpf(*loaded), good) << what;
    EXPECT_EQ(*ReadFile(CachePath()), good) << what << ": cache file not rewritten";
  }
  EXPECT_FALSE(ParseBpf(good, "0000000000000000")) << "a file for another key must not load";
}

// --- the real kernel: install in a forked child, report each result over a pipe ---

struct Outcome {
  char name[40];
  long ret;
  int err;
};

void Report(int fd, const char* name, long ret, int err) {
  Outcome o{};
  std::snprintf(o.name, sizeof o.name, "%s", name);
  o.ret = ret;
  o.err = err;
  (void)!::write(fd, &o, sizeof o);
}

#define TRY_SYSCALL(fd, name, expr)               \
  do {                                            \
    errno = 0;                                    \
    long ret_ = (long)(expr);                     \
    Report(fd, name, ret_, ret_ < 0 ? errno : 0); \
  } while (0)

void ChildChecks(int fd) {
  TRY_SYSCALL(fd, "mount", ::syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, nullptr));
  TRY_SYSCALL(fd, "unshare", ::syscall(SYS_unshare, CLONE_NEWUSER));
  TRY_SYSCALL(fd, "ptrace", ::syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0));
  TRY_SYSCALL(fd, "keyctl", ::syscall(SYS_keyctl, 0, 0, 0, 0, 0));
  TRY_SYSCALL(fd, "bpf", ::syscall(SYS_bpf, 0, nullptr, 0));
  TRY_SYSCALL(fd, "perf_event_open", ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0));
  TRY_SYSCALL(fd, "socket_packet", ::socket(AF_PACKET, SOCK_RAW, 0));
  char c = 'x';
  TRY_SYSCALL(fd, "ioctl_tiocsti", ::syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, &c));
  TRY_SYSCALL(fd, "open_by_handle_at", ::syscall(SYS_open_by_handle_at, AT_FDCWD, nullptr, 0));
  TRY_SYSCALL(fd, "clone3", ::syscall(SYS_clone3, nullptr, 0));
  TRY_SYSCALL(fd, "x32_getpid", ::syscall(0x40000000 | SYS_getpid));
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L /* i386 getpid */) : "memory");
  Report(fd, "int80_getpid", ret, ret < 0 ? static_cast<int>(-ret) : 0);
  // Still allowed:
  TRY_SYSCALL(fd, "getpid", ::getpid());
  TRY_SYSCALL(fd, "write", ::write(fd, "", 0));
  int local[2] = {-1, -1};
  char byte = 0;
  TRY_SYSCALL(fd, "pipe", ::pipe(local));
  TRY_SYSCALL(fd, "read", ::write(local[1], "y", 1) == 1 ? ::read(local[0], &byte, 1) : -1);
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  Report(fd, "mmap", p == MAP_FAILED ? -1 : 0, p == MAP_FAILED ? errno : 0);
  pid_t pid = ::fork();  // glibc's fork is clone(SIGCHLD|CLONE_CHILD_SETTID|…)
  if (pid == 0) ::_exit(7);
  int status = 0;
  long waited = pid > 0 ? ::waitpid(pid, &status, 0) : -1;
  Report(fd, "fork", pid > 0 && waited == pid && WEXITSTATUS(status) == 7 ? 0 : -1, errno);
  TRY_SYSCALL(fd, "socket_inet", ::socket(AF_INET, SOCK_STREAM, 0));
}

TEST(SeccompInstallTest, RealKernelRefusesAndAllows) {
  const BpfProgram& program = Strict();
  ASSERT_FALSE(program.instructions.empty());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    int err = InstallSeccomp(program);
    Report(fds[1], "install", err == 0 ? 0 : -1, err);
    if (err == 0) ChildChecks(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::map<std::string, Outcome> got;
  Outcome o;
  while (::read(fds[0], &o, sizeof o) == sizeof o) got[o.name] = o;
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  ASSERT_EQ(got["install"].err, 0) << "install: " << strerrorname_np(got["install"].err);

  for (const char* name : {"mount", "unshare", "ptrace", "keyctl", "bpf", "perf_event_open",
                           "socket_packet", "ioctl_tiocsti", "open_by_handle_at"}) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(got[name].ret, -1) << name;
    EXPECT_EQ(got[name].err, EPERM) << name << ": " << strerrorname_np(got[name].err);
  }
  for (const char* name : {"clone3", "x32_getpid", "int80_getpid"}) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(got[name].err, ENOSYS) << name << " returned " << got[name].ret;
  }
  for (const char* name : {"getpid", "write", "pipe", "read", "mmap", "fork", "socket_inet"}) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_GE(got[name].ret, 0) << name << ": " << strerrorname_np(got[name].err);
  }
}

}  // namespace
}  // namespace ember::sandbox
