#include "sandbox/capabilities.h"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "base/fs.h"

namespace ember::sandbox {
namespace {

TEST(CapabilitiesTest, ReadCapLastCap) {
  auto last = ReadCapLastCap();
  ASSERT_TRUE(last) << last.error().ToString();
  EXPECT_GE(*last, 37);  // CAP_AUDIT_READ exists on every kernel ember supports
}

TEST(CapabilitiesTest, ReadCapLastCapRejectsGarbage) {
  char templ[] = "/tmp/ember-caps-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  std::string root = templ;
  ASSERT_TRUE(MakeDirs(root + "/sys/kernel"));
  ASSERT_TRUE(WriteFileAtomic(root + "/sys/kernel/cap_last_cap", "banana\n"));
  EXPECT_FALSE(ReadCapLastCap(root));
  ASSERT_TRUE(WriteFileAtomic(root + "/sys/kernel/cap_last_cap", "40\n"));
  EXPECT_EQ(ReadCapLastCap(root).value_or(-1), 40);
  (void)RemoveTree(root);
}

// Runs DropAllCapabilities in a forked child and returns the child's /proc/self/status Cap*
// lines (plus "rc" and "uid"), passed back through a pipe.
// `hinted`: the child first drops CAP_NET_RAW from its bounding set, then drops everything with
// the bounding set it reads (ReadBoundingSet) as the hint, as a fork-boot child does.
std::map<std::string, std::string> DropInChild(const IdSwitch* ids, bool hinted = false) {
  auto last = ReadCapLastCap();
  EXPECT_TRUE(last);
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    uint64_t bounding = ~uint64_t{0};
    if (hinted) {
      (void)::prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0);
      bounding = ReadBoundingSet(last.value_or(40));
    }
    int rc = DropAllCapabilities(last.value_or(40), ids, 0, bounding);
    std::string out = "rc:\t" + std::to_string(rc) + "\n";
    out += "hint:\t" + std::to_string(bounding) + "\n";
    out += "uid:\t" + std::to_string(::getuid()) + "\n";
    out += "securebits:\t" + std::to_string(::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)) + "\n";
    out += "nnp_independent:\t0\n";
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Cap", 0) == 0) out += line + "\n";
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::map<std::string, std::string> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      size_t v = line.find_first_not_of(" \t", colon + 1);
      fields[line.substr(0, colon)] = v == std::string::npos ? "" : line.substr(v);
    }
    pos = end == std::string::npos ? text.size() : end + 1;
  }
  return fields;
}

TEST(CapabilitiesTest, DropAllLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP) to drop the bounding set";
  auto f = DropInChild(nullptr);
  ASSERT_EQ(f["rc"], "0") << "errno " << f["rc"];
  for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(f[set], "0000000000000000") << set;
  }
  EXPECT_EQ(f["uid"], "0");
  int bits = std::stoi(f["securebits"]);
  EXPECT_TRUE(bits & (1 << 0)) << "SECBIT_NOROOT not set: " << bits;
  EXPECT_TRUE(bits & (1 << 1)) << "SECBIT_NOROOT_LOCKED not set: " << bits;
}

TEST(CapabilitiesTest, DropAllWithTheBoundingSetReadBeforeLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP) to drop the bounding set";
  auto f = DropInChild(nullptr, /*hinted=*/true);
  ASSERT_EQ(f["rc"], "0") << "errno " << f["rc"];
  uint64_t hint = std::stoull(f["hint"]);
  EXPECT_EQ(hint & (1ULL << CAP_NET_RAW), 0U) << "the dropped capability was read back";
  EXPECT_NE(hint & (1ULL << CAP_SYS_ADMIN), 0U) << "root's bounding set read as empty";
  for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(f[set], "0000000000000000") << set;
  }
}

TEST(CapabilitiesTest, DropAllWithIdSwitch) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  IdSwitch ids{65534, 65534, true};
  auto f = DropInChild(&ids);
  ASSERT_EQ(f["rc"], "0") << "errno " << f["rc"];
  EXPECT_EQ(f["uid"], "65534");
  for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(f[set], "0000000000000000") << set;
  }
}

}  // namespace
}  // namespace ember::sandbox
