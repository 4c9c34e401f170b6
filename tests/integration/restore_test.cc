// Restore of the zdtm programs (tests/zdtm): each is started, checkpointed at its read() on the
// control socket, killed, and restored by ember-restore in a fresh pid namespace at its recorded
// pid; then it gets its byte and must answer "ok" (it checks its own state). Both memory modes,
// and 20 concurrent restores from one image.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "integration/restore_harness.h"
#include "sandbox/seccomp.h"
#include "util/fixtures.h"

namespace ember::snapshot {
namespace {

using ember::testing::TempDir;
using namespace ember::snapshot::zdtm;  // NOLINT(google-build-using-namespace)
using MemoryMode = RestoreSettings::MemoryMode;

struct Case {
  std::string program;
  MemoryMode mode;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return info.param.program + (info.param.mode == MemoryMode::kCopy ? "_copy" : "_overlay");
}

// python3.11 with heavy imports, a zdtm program in spirit: "ready", read() on fd 0, then it
// checks it still computes and says "ok".
std::vector<std::string> PythonArgv() {
  return {"/usr/bin/python3.11", "-c",
          "import sys, os, json, decimal, asyncio, email.parser, sqlite3, hashlib, random\n"
          "data = {str(i): [i] * 10 for i in range(20000)}\n"
          "print('ready pid=%d' % os.getpid(), flush=True)\n"
          "sys.stdin.buffer.raw.read(1)\n"
          "s = json.dumps(data)\n"
          "ok = len(json.loads(s)) == 20000 and hashlib.sha256(b'x').hexdigest()[:4] == '2d71'\n"
          "ok = ok and decimal.Decimal('1.1') + decimal.Decimal('2.2') == decimal.Decimal('3.3')\n"
          "ok = ok and asyncio.run(asyncio.sleep(0, 'x')) == 'x'\n"
          "big = [bytes(1000) for _ in range(10000)]\n"
          "print('ok' if ok else 'fail python state', flush=True)\n"};
}

class RestoreTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (ptrace, pid namespaces, set_tid)";
  }
  std::vector<std::string> Argv(const std::string& program) {
    if (program == "python") return PythonArgv();
    std::vector<std::string> argv = {Zdtm(program)};
    if (program == "files") argv.push_back(dir_.path());
    return argv;
  }
  TempDir dir_;
};

TEST_P(RestoreTest, RestoredProgramSaysOk) {
  std::string image = dir_.path() + "/" + GetParam().program + ".snapshot";
  {
    Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv(GetParam().program), image));
  }
  RestoreSettings settings;
  settings.memory_mode = GetParam().mode;
  RestoreAndExpectOk(image, settings);
}

INSTANTIATE_TEST_SUITE_P(
    Zdtm, RestoreTest,
    ::testing::Values(Case{"memory", MemoryMode::kCopy}, Case{"memory", MemoryMode::kOverlay},
                      Case{"files", MemoryMode::kCopy}, Case{"files", MemoryMode::kOverlay},
                      Case{"signals", MemoryMode::kCopy}, Case{"signals", MemoryMode::kOverlay},
                      Case{"rseq", MemoryMode::kCopy}, Case{"robust", MemoryMode::kCopy},
                      Case{"timers", MemoryMode::kCopy}, Case{"threads", MemoryMode::kCopy},
                      Case{"threads", MemoryMode::kOverlay}, Case{"fpu", MemoryMode::kCopy},
                      Case{"fpu", MemoryMode::kOverlay}, Case{"dontneed", MemoryMode::kCopy},
                      Case{"dontneed", MemoryMode::kOverlay}, Case{"clocks", MemoryMode::kCopy},
                      Case{"clocks", MemoryMode::kOverlay}),
    CaseName);

// The restored process has its recorded pid inside the new namespace (a child of the reaper
// pid 1), its threads their recorded tids, and the restorer's report names every phase.
TEST_F(RestoreTest, RecordedPidAndTidsInTheNewNamespace) {
  std::string image = dir_.path() + "/threads.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("threads"), image));
  pid_t recorded = original.pid();
  std::string tids = original.Get("tids");
  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image, RestoreSettings{}));
  RestoreReport report = instance.ReadReport();
  ASSERT_TRUE(CheckRestoreReport(report));
  for (uint32_t phase = 0; phase < kReportPhases; ++phase) {
    EXPECT_GT(report.phase_ns[phase], 0u) << "phase " << phase;
  }
  // The child of pid 1 whose pid in the namespace is the recorded one.
  std::string host_pid = instance.HostPidOf(recorded);
  ASSERT_FALSE(host_pid.empty()) << "no child of pid 1 has pid " << recorded;
  auto status = ReadFile("/proc/" + host_pid + "/status");
  ASSERT_TRUE(status) << status.error().ToString();
  size_t nspid = status->find("NSpid:");
  ASSERT_NE(nspid, std::string::npos);
  std::string line = status->substr(nspid, status->find('\n', nspid) - nspid);
  EXPECT_EQ(line.substr(line.rfind('\t') + 1), std::to_string(recorded)) << line;
  auto tasks = ListDirectory("/proc/" + host_pid + "/task");
  ASSERT_TRUE(tasks) << tasks.error().ToString();
  EXPECT_EQ(tasks->size(), 5u);
  for (const std::string& task : *tasks) {
    auto task_status = ReadFile("/proc/" + host_pid + "/task/" + task + "/status");
    ASSERT_TRUE(task_status);
    size_t at = task_status->find("NSpid:");
    std::string task_line = task_status->substr(at, task_status->find('\n', at) - at);
    std::string tid = task_line.substr(task_line.rfind('\t') + 1);
    if (tid != std::to_string(recorded)) {
      EXPECT_NE(tids.find(tid), std::string::npos) << tid << " not in " << tids;
    }
  }
  EXPECT_EQ(instance.Finish(), "ok");
  EXPECT_EQ(instance.ExitCode(), 0);
}

// Cold boot: the working set's pages are read ahead before the task runs; the process is the
// same.
TEST_F(RestoreTest, PrefetchOfTheWorkingSet) {
  std::string image = dir_.path() + "/memory.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("memory"), image));
  uint64_t big = original.Num("mmap");
  std::vector<uint64_t> pages;
  for (uint64_t page = 0; page < 512; ++page) pages.push_back(big + page * kPageSize);
  pages.push_back(original.Num("heap") & ~(kPageSize - 1));
  ASSERT_TRUE(RewriteWorkingSet(image, pages));
  for (MemoryMode mode : {MemoryMode::kOverlay, MemoryMode::kCopy}) {
    RestoreSettings settings;
    settings.prefetch_working_set = true;
    settings.memory_mode = mode;
    auto reader = ImageReader::Open(image);
    ASSERT_TRUE(reader);
    auto plan = BuildRestorePlan(*reader, settings);
    ASSERT_TRUE(plan) << plan.error().ToString();
    EXPECT_GT(reinterpret_cast<const PlanHeader*>(plan->data())->prefetch_count, 0u);
    RestoreAndExpectOk(image, settings);
  }
}

// The restored process runs with the sandbox's identity and none of ember's privileges: the
// uid/gid switched, every capability set empty, no_new_privs, the sandbox's seccomp filter (here
// one that allows everything), in every thread. The reaper pid 1 drops them too.
TEST_F(RestoreTest, PrivilegesAreDroppedInEveryThread) {
  std::string image = dir_.path() + "/threads.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("threads"), image));
  RestoreSettings settings;
  settings.uid = 65534;
  settings.gid = 65533;
  sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  settings.seccomp_bpf.resize(sizeof allow);
  std::memcpy(settings.seccomp_bpf.data(), &allow, sizeof allow);
  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image, settings));
  auto report = CheckRestoreReport(instance.ReadReport());
  ASSERT_TRUE(report) << report.error().ToString();
  std::string p1 = std::to_string(instance.pid1());
  std::string host_pid = instance.HostPidOf(original.pid());
  ASSERT_FALSE(host_pid.empty());
  auto field = [](const std::string& status, const std::string& name) {
    size_t at = status.find("\n" + name + ":");
    if (at == std::string::npos) return std::string("missing");
    at += name.size() + 2;
    std::string value = status.substr(at, status.find('\n', at) - at);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  };
  auto tasks = ListDirectory("/proc/" + host_pid + "/task");
  ASSERT_TRUE(tasks);
  EXPECT_EQ(tasks->size(), 5u);
  for (const std::string& task : *tasks) {
    auto status = ReadFile("/proc/" + host_pid + "/task/" + task + "/status");
    ASSERT_TRUE(status);
    EXPECT_EQ(field(*status, "Uid"), "65534\t65534\t65534\t65534") << task;
    EXPECT_EQ(field(*status, "Gid"), "65533\t65533\t65533\t65533") << task;
    for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
      EXPECT_EQ(field(*status, set), "0000000000000000") << task << " " << set;
    }
    EXPECT_EQ(field(*status, "NoNewPrivs"), "1") << task;
    EXPECT_EQ(field(*status, "Seccomp"), "2") << task;
  }
  // The reaper drops its privileges right after the clone, while the process is being restored,
  // not in step with the report: wait for it (bounded).
  std::string reaper_seccomp;  // its last step
  for (int i = 0; i < 500 && reaper_seccomp != "2"; ++i) {
    if (i > 0) ::usleep(10000);
    auto reaper = ReadFile("/proc/" + p1 + "/status");
    ASSERT_TRUE(reaper);
    reaper_seccomp = field(*reaper, "Seccomp");
  }
  EXPECT_EQ(reaper_seccomp, "2");
  auto reaper = ReadFile("/proc/" + p1 + "/status");
  ASSERT_TRUE(reaper);
  EXPECT_EQ(field(*reaper, "CapEff"), "0000000000000000");
  EXPECT_EQ(field(*reaper, "CapBnd"), "0000000000000000");
  EXPECT_EQ(field(*reaper, "NoNewPrivs"), "1");
  EXPECT_EQ(field(*reaper, "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(instance.Finish(), "ok");
  EXPECT_EQ(instance.ExitCode(), 0);
}

// exe_path: /proc/PID/exe shows the program again instead of ember-restore.
TEST_F(RestoreTest, ExePathIsShown) {
  std::string image = dir_.path() + "/memory.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("memory"), image));
  char exe[4096];
  ASSERT_NE(::realpath(Zdtm("memory").c_str(), exe), nullptr);
  for (MemoryMode mode : {MemoryMode::kOverlay, MemoryMode::kCopy}) {
    RestoreSettings settings;
    settings.exe_path = exe;
    settings.memory_mode = mode;
    RestoredInstance instance;
    ASSERT_NO_FATAL_FAILURE(instance.Start(image, settings));
    auto report = CheckRestoreReport(instance.ReadReport());
    ASSERT_TRUE(report) << report.error().ToString();
    std::string host_pid = instance.HostPidOf(original.pid());
    ASSERT_FALSE(host_pid.empty());
    char link[4096] = {};
    ASSERT_GT(::readlink(("/proc/" + host_pid + "/exe").c_str(), link, sizeof link - 1), 0);
    EXPECT_EQ(std::string(link), exe);
    EXPECT_EQ(instance.Finish(), "ok");
    EXPECT_EQ(instance.ExitCode(), 0);
  }
}

// On-demand I/O reconnection: the regular files zdtm_files had open are not opened by the
// restore (their numbers hold the placeholder, an O_PATH fd of "/"), and are reopened at their
// recorded offsets on first use (the program lseeks two of them and says "ok"). With lazy files
// off they are open at once.
TEST_F(RestoreTest, RegularFilesAreReopenedOnFirstUse) {
  std::string image = dir_.path() + "/files.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("files"), image));
  std::string data = original.Get("path");
  for (bool lazy : {true, false}) {
    RestoreSettings settings;
    settings.lazy_files = lazy;
    RestoredInstance instance;
    ASSERT_NO_FATAL_FAILURE(instance.Start(image, settings));
    auto report = CheckRestoreReport(instance.ReadReport());
    ASSERT_TRUE(report) << report.error().ToString();
    std::string host_pid = instance.HostPidOf(original.pid());
    ASSERT_FALSE(host_pid.empty());
    for (const char* key : {"rw", "ro", "append"}) {
      char link[4096] = {};
      std::string fd = "/proc/" + host_pid + "/fd/" + original.Get(key);
      ASSERT_GT(::readlink(fd.c_str(), link, sizeof link - 1), 0) << fd;
      EXPECT_EQ(std::string(link), lazy ? "/" : data) << key << (lazy ? " (lazy)" : " (eager)");
    }
    char link[4096] = {};
    std::string dir = "/proc/" + host_pid + "/fd/" + original.Get("dir");
    ASSERT_GT(::readlink(dir.c_str(), link, sizeof link - 1), 0);
    EXPECT_EQ(std::string(link), dir_.path()) << "directories are opened eagerly";
    EXPECT_EQ(instance.Finish(), "ok");
    EXPECT_EQ(instance.ExitCode(), 0);
  }
}

// Under the sandbox's real strict policy (the one plain boot installs) and its unprivileged
// uid: the restorer's last calls (futex, write, close, rt_sigreturn), the reaper's (read,
// wait4, exit_group), the lazy files' reconnection and the memory shim's trap all live with it.
class StrictPolicyRestoreTest : public RestoreTest {};

TEST_P(StrictPolicyRestoreTest, RestoredProgramSaysOk) {
  if (GetParam().program == "python" && !PathExists("/usr/bin/python3.11")) {
    GTEST_SKIP() << "no /usr/bin/python3.11";
  }
  auto policy = sandbox::CompileSeccomp(sandbox::SeccompPolicy::kStrict);
  ASSERT_TRUE(policy) << policy.error().ToString();
  std::string image = dir_.path() + "/" + GetParam().program + ".snapshot";
  {
    Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv(GetParam().program), image));
  }
  // The files program's scratch files must be reachable by the unprivileged uid.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
  ::chmod((dir_.path() + "/data").c_str(), 0666);  // zdtm_files' data file, if any
  RestoreSettings settings;
  settings.memory_mode = GetParam().mode;
  settings.uid = 65534;
  settings.gid = 65534;
  const auto& bpf = policy->instructions;
  settings.seccomp_bpf.resize(bpf.size() * sizeof(sock_filter));
  std::memcpy(settings.seccomp_bpf.data(), bpf.data(), settings.seccomp_bpf.size());
  RestoreAndExpectOk(image, settings);
}

INSTANTIATE_TEST_SUITE_P(
    Zdtm, StrictPolicyRestoreTest,
    ::testing::Values(Case{"threads", MemoryMode::kOverlay}, Case{"files", MemoryMode::kOverlay},
                      Case{"dontneed", MemoryMode::kOverlay}, Case{"signals", MemoryMode::kCopy},
                      Case{"timers", MemoryMode::kCopy}, Case{"python", MemoryMode::kOverlay}),
    CaseName);

// A failed restore says where: the file fd `rw` of zdtm_files is gone.
TEST_F(RestoreTest, MissingFileIsReportedWithItsFd) {
  std::string image = dir_.path() + "/files.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv("files"), image));
  ASSERT_EQ(::rename(original.Get("path").c_str(), (dir_.path() + "/moved").c_str()), 0);
  RestoreSettings settings;
  settings.memory_mode = MemoryMode::kCopy;
  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image, settings));
  RestoreReport report = instance.ReadReport();
  auto status = CheckRestoreReport(report);
  ASSERT_FALSE(status);
  // The private file mapping comes first (memory before files), then the fds.
  EXPECT_TRUE(report.stage == kStageMapArea || report.stage == kStageOpenFile)
      << status.error().ToString();
  EXPECT_EQ(report.error, ENOENT) << status.error().ToString();
  EXPECT_EQ(instance.ExitCode(), 125);
}

// A real python3.11 with heavy imports, blocked in read() on its control socket: libc and the
// extension modules come back as private file mappings by path, the heap through the mm bounds.
// After the restore it must still compute, allocate and print.
TEST_F(RestoreTest, PythonWithHeavyImports) {
  if (!PathExists("/usr/bin/python3.11")) GTEST_SKIP() << "no /usr/bin/python3.11";
  std::string image = dir_.path() + "/python.snapshot";
  {
    Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, PythonArgv(), image));
  }
  for (MemoryMode mode : {MemoryMode::kOverlay, MemoryMode::kCopy}) {
    RestoreSettings settings;
    settings.memory_mode = mode;
    RestoreAndExpectOk(image, settings);
  }
}

// An agent is pid 1 of its sandbox: ember-restore becomes the process (no reaper), enters the
// time namespace with setns, and the threads come back with their small tids.
class Pid1RestoreTest : public RestoreTest {};

TEST_P(Pid1RestoreTest, BecomesThePid1Process) {
  std::string image = dir_.path() + "/" + GetParam().program + ".pid1.snapshot";
  {
    Pid1Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointPid1ToImage(original, Argv(GetParam().program), image));
  }
  RestoreSettings settings;
  settings.memory_mode = GetParam().mode;
  RestoreAndExpectOk(image, settings);
}

INSTANTIATE_TEST_SUITE_P(
    Zdtm, Pid1RestoreTest,
    ::testing::Values(Case{"memory", MemoryMode::kOverlay}, Case{"files", MemoryMode::kOverlay},
                      Case{"signals", MemoryMode::kCopy}, Case{"threads", MemoryMode::kOverlay},
                      Case{"timers", MemoryMode::kCopy}, Case{"fpu", MemoryMode::kCopy},
                      Case{"dontneed", MemoryMode::kOverlay}, Case{"clocks", MemoryMode::kCopy}),
    CaseName);

uint64_t HostClockNs(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr uint64_t kSecondNs = 1000000000ULL;

// "ok monotonic=<ns> boottime=<ns>" (zdtm_clocks --print) -> the two values; 0 if absent.
uint64_t VerdictValue(const std::string& verdict, const std::string& key) {
  size_t at = verdict.find(key + "=");
  return at == std::string::npos ? 0 : std::stoull(verdict.substr(at + key.size() + 1));
}

// The clock offsets (ns) /proc shows for a restored process, "monotonic" or "boottime".
int64_t TimensOffsetNs(const std::string& host_pid, const std::string& clock) {
  auto text = ReadFile("/proc/" + host_pid + "/timens_offsets");
  if (!text) return -1;
  std::istringstream lines(*text);
  std::string name;
  int64_t sec = 0, nsec = 0;
  while (lines >> name >> sec >> nsec) {
    if (name == clock) return sec * static_cast<int64_t>(kSecondNs) + nsec;
  }
  return -1;
}

// A restore after a reboot, faked: the image's recorded clocks are put 1000 s ahead of the
// host's. The restored process's clocks continue from the recorded values (its time namespace
// has ~1000 s offsets) instead of reading below what it saw; both as a reaper's child and as
// pid 1 (which enters the namespace with setns).
class ClocksRestoreTest : public ::testing::TestWithParam<bool /* pid 1 */> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (ptrace, pid and time namespaces)";
  }
  TempDir dir_;
};

TEST_P(ClocksRestoreTest, ContinueFromTheRecordedClocksAfterAReboot) {
  const bool pid1 = GetParam();
  const std::string image = dir_.path() + "/clocks.snapshot";
  const std::vector<std::string> argv = {Zdtm("clocks"), "--print"};
  Program original;
  Pid1Program original_pid1;
  pid_t host_pid = 0;
  if (pid1) {
    ASSERT_NO_FATAL_FAILURE(original_pid1.Start(argv));
    host_pid = original_pid1.host_pid();
  } else {
    ASSERT_NO_FATAL_FAILURE(original.Start(argv));
    host_pid = original.pid();
  }
  CheckpointOptions options;
  options.control_fd = 0;
  options.leave_stopped = true;
  auto state = Checkpoint(host_pid, options);
  ASSERT_TRUE(state) << state.error().ToString();
  ::kill(host_pid, SIGKILL);
  // Recorded at the freeze: no earlier than what the process read, no later than now.
  if (!pid1) {
    EXPECT_GE(state->clocks.monotonic_ns, original.Num("monotonic"));
    EXPECT_GE(state->clocks.boottime_ns, original.Num("boottime"));
  }
  EXPECT_LE(state->clocks.monotonic_ns, HostClockNs(CLOCK_MONOTONIC));
  EXPECT_LE(state->clocks.boottime_ns, HostClockNs(CLOCK_BOOTTIME));
  state->clocks.monotonic_ns = HostClockNs(CLOCK_MONOTONIC) + 1000 * kSecondNs;
  state->clocks.boottime_ns = HostClockNs(CLOCK_BOOTTIME) + 1000 * kSecondNs;
  auto written = WriteImage(*state, image);
  ASSERT_TRUE(written) << written.error().ToString();

  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image, RestoreSettings{}));
  auto report = CheckRestoreReport(instance.ReadReport());
  ASSERT_TRUE(report) << report.error().ToString();
  const std::string restored =
      pid1 ? std::to_string(instance.pid1()) : instance.HostPidOf(state->pid);
  ASSERT_FALSE(restored.empty());
  for (const char* clock : {"monotonic", "boottime"}) {
    const int64_t offset = TimensOffsetNs(restored, clock);
    EXPECT_GT(offset, 900 * static_cast<int64_t>(kSecondNs)) << clock;
    EXPECT_LE(offset, 1000 * static_cast<int64_t>(kSecondNs)) << clock;
  }
  const std::string verdict = instance.Finish();
  ASSERT_TRUE(verdict.starts_with("ok ")) << verdict;
  EXPECT_GE(VerdictValue(verdict, "monotonic"), state->clocks.monotonic_ns) << verdict;
  EXPECT_GE(VerdictValue(verdict, "boottime"), state->clocks.boottime_ns) << verdict;
  // Continued from the recorded values, not pushed further than the restore took.
  EXPECT_LT(VerdictValue(verdict, "monotonic"), state->clocks.monotonic_ns + 100 * kSecondNs);
  EXPECT_EQ(instance.ExitCode(), 0);
}

INSTANTIATE_TEST_SUITE_P(Clocks, ClocksRestoreTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "Pid1" : "ReaperChild");
                         });

// On the boot it was taken on, the restored process's clocks are the host's: offsets 0.
TEST_F(RestoreTest, ClocksAreTheHostsOnTheSameBoot) {
  const std::string image = dir_.path() + "/clocks.snapshot";
  Program original;
  ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, {Zdtm("clocks"), "--print"}, image));
  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image, RestoreSettings{}));
  auto report = CheckRestoreReport(instance.ReadReport());
  ASSERT_TRUE(report) << report.error().ToString();
  const std::string restored = instance.HostPidOf(original.pid());
  ASSERT_FALSE(restored.empty());
  EXPECT_EQ(TimensOffsetNs(restored, "monotonic"), 0);
  EXPECT_EQ(TimensOffsetNs(restored, "boottime"), 0);
  const uint64_t before = HostClockNs(CLOCK_MONOTONIC);
  const std::string verdict = instance.Finish();
  ASSERT_TRUE(verdict.starts_with("ok ")) << verdict;
  EXPECT_GE(VerdictValue(verdict, "monotonic"), before);
  EXPECT_LE(VerdictValue(verdict, "monotonic"), HostClockNs(CLOCK_MONOTONIC));
  EXPECT_EQ(instance.ExitCode(), 0);
}

// A process that runs in a time namespace with offsets (a restored instance, here one made by
// unshare(1) with +1000 s) is recorded with its own clocks, and its restore keeps them.
TEST_F(RestoreTest, ClocksOfAProcessInATimeNamespaceAreKept) {
  if (!PathExists("/usr/bin/unshare")) GTEST_SKIP() << "no /usr/bin/unshare (util-linux)";
  const std::string image = dir_.path() + "/clocks.snapshot";
  Program original;
  // unshare(1) enters the new time namespace itself, then execs the program in it.
  ASSERT_NO_FATAL_FAILURE(original.Start(
      {"/usr/bin/unshare", "--time", "--monotonic", "1000", "--boottime", "1000", Zdtm("clocks")}));
  const uint64_t seen = original.Num("monotonic");
  ASSERT_GT(seen, HostClockNs(CLOCK_MONOTONIC) + 900 * kSecondNs) << "not in the time namespace";
  CheckpointOptions options;
  options.control_fd = 0;
  options.leave_stopped = true;
  auto state = Checkpoint(original.pid(), options);
  ASSERT_TRUE(state) << state.error().ToString();
  ::kill(original.pid(), SIGKILL);
  EXPECT_GE(state->clocks.monotonic_ns, seen);
  EXPECT_GE(state->clocks.boottime_ns, original.Num("boottime"));
  EXPECT_LT(state->clocks.monotonic_ns, HostClockNs(CLOCK_MONOTONIC) + 1000 * kSecondNs);
  auto written = WriteImage(*state, image);
  ASSERT_TRUE(written) << written.error().ToString();
  // The program itself checks that its clocks did not go back.
  RestoreAndExpectOk(image, RestoreSettings{});
}

// The fan-out: 20 instances restored at once from one immutable image, each a complete,
// independent process (its own pid namespace, same recorded pid) that says "ok".
class ConcurrentRestoreTest : public RestoreTest {};

TEST_P(ConcurrentRestoreTest, TwentyFromOneImage) {
  constexpr int kInstances = 20;
  if (GetParam().program == "python" && !PathExists("/usr/bin/python3.11")) {
    GTEST_SKIP() << "no /usr/bin/python3.11";
  }
  std::string image = dir_.path() + "/" + GetParam().program + ".snapshot";
  {
    Program original;
    ASSERT_NO_FATAL_FAILURE(CheckpointToImage(original, Argv(GetParam().program), image));
  }
  RestoreSettings settings;
  settings.memory_mode = GetParam().mode;
  std::vector<RestoredInstance> instances(kInstances);
  for (RestoredInstance& instance : instances) {
    ASSERT_NO_FATAL_FAILURE(instance.Start(image, settings));
  }
  for (int i = 0; i < kInstances; ++i) {
    auto status = CheckRestoreReport(instances[i].ReadReport());
    EXPECT_TRUE(status) << "instance " << i << ": " << status.error().ToString();
  }
  for (int i = 0; i < kInstances; ++i) EXPECT_EQ(instances[i].Finish(), "ok") << "instance " << i;
  for (int i = 0; i < kInstances; ++i) EXPECT_EQ(instances[i].ExitCode(), 0) << "instance " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Zdtm, ConcurrentRestoreTest,
    ::testing::Values(Case{"memory", MemoryMode::kOverlay}, Case{"files", MemoryMode::kOverlay},
                      Case{"signals", MemoryMode::kOverlay}, Case{"rseq", MemoryMode::kOverlay},
                      Case{"robust", MemoryMode::kOverlay}, Case{"timers", MemoryMode::kOverlay},
                      Case{"threads", MemoryMode::kOverlay}, Case{"fpu", MemoryMode::kOverlay},
                      Case{"dontneed", MemoryMode::kOverlay}, Case{"threads", MemoryMode::kCopy},
                      Case{"python", MemoryMode::kOverlay}),
    CaseName);

}  // namespace
}  // namespace ember::snapshot
