// `ember run` as a user runs it: the real binary, a busybox image imported into a private data
// dir, and after every test a check that no mount, cgroup process or file was left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/child_process.h"
#include "base/fs.h"
#include "util/fixtures.h"

namespace ember {
namespace {

using testing::RunResult;

class RunTest : public testing::BusyboxSandboxTest {};

TEST_F(RunTest, StreamsStdioAndExitsWithTheCommandsStatus) {
  auto echo = Run({"--", "echo", "hello"});
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  EXPECT_EQ(echo.out, "hello\n");
  auto cat = Run({"--", "cat"}, "from stdin\n");
  EXPECT_EQ(cat.out, "from stdin\n");
  auto code = Run({"--", "sh", "-c", "echo err >&2; exit 3"});
  EXPECT_EQ(code.exit_code, 3);
  EXPECT_EQ(code.err, "err\n");
}

// `ember run` builds only its own command's options (main.cc): help, another command after
// global options, and an unknown command still see every command.
TEST_F(RunTest, HelpListsEveryCommandAndRunHelpItsOptions) {
  auto help = testing::RunCommand({testing::EmberBinary(), "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  for (const char* command : {"run", "image", "daemon", "snapshot", "doctor", "cleanup"}) {
    EXPECT_NE(help.out.find(std::string("  ") + command + " "), std::string::npos)
        << command << " missing from: " << help.out;
  }
  auto run_help = testing::RunCommand({testing::EmberBinary(), "run", "--help"});
  EXPECT_EQ(run_help.exit_code, 0) << run_help.err;
  EXPECT_NE(run_help.out.find("--tmpfs-size"), std::string::npos) << run_help.out;
  auto other = env_->Ember({"image", "ls"});  // after --data-dir/--run-dir and their values
  EXPECT_EQ(other.exit_code, 0) << other.err;
  auto unknown = testing::RunCommand({testing::EmberBinary(), "no-such-command"});
  EXPECT_NE(unknown.exit_code, 0);
}

// -v names the sandbox, its start timings and the compiled seccomp filter it got (a file of
// raw BPF in the run dir's cache: what bench/peers/tools.py's full-mandate floor installs).
TEST_F(RunTest, VerboseNamesTheSandboxAndItsSeccompFilter) {
  auto r = Run({"-v", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("started in"), std::string::npos) << r.err;
  const std::string prefix = "ember: seccomp filter ";
  size_t at = r.err.find(prefix);
  ASSERT_NE(at, std::string::npos) << r.err;
  size_t start = at + prefix.size();
  std::string path = r.err.substr(start, r.err.find(' ', start) - start);
  EXPECT_EQ(path.rfind(env_->run_dir() + "/seccomp/", 0), 0u) << path;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
  EXPECT_GT(st.st_size, 0) << path;
}

TEST_F(RunTest, SignalDeathIs128PlusTheSignal) {
  // pid 1 cannot be killed from inside its namespace, so a child shell kills itself and its
  // parent passes the status on.
  auto r = Run({"--", "sh", "-c", "sh -c 'kill -KILL $$'; exit $?"});
  EXPECT_EQ(r.exit_code, 137) << r.err;
}

TEST_F(RunTest, MissingAndNonExecutableCommandsAre127And126) {
  auto missing = Run({"--", "no-such-command"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("no-such-command"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  auto not_exec = Run({"--", "/etc/passwd"});
  EXPECT_EQ(not_exec.exit_code, 126) << not_exec.err;
}

TEST_F(RunTest, EnvWorkdirUserAndHostname) {
  auto r = Run({"--env", "GREETING=hi there", "-w", "/tmp", "--user", "1000:1000", "--hostname",
                "box1", "--", "sh", "-c", "echo $GREETING; pwd; id -u; hostname"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hi there\n/tmp\n1000\nbox1\n");
}

TEST_F(RunTest, ImageFilesBelongToTheSandboxRoot) {
  auto r = Run({"--", "stat", "-c", "%u:%g %n", "/bin/busybox", "/home/user"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0:0 /bin/busybox\n1000:1000 /home/user\n");
}

TEST_F(RunTest, AnotherIdRangeGetsItsOwnViewOfTheImage) {
  auto r = Run({"--id-range", "300000:65536", "--", "sh", "-c",
                "cat /proc/self/uid_map; stat -c %u /bin/busybox"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("300000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n0\n"), std::string::npos) << "image files owned by root: " << r.out;
  auto bad = Run({"--id-range", "0:65536", "--", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("--id-range"), std::string::npos) << bad.err;
}

TEST_F(RunTest, BadLimitsAreRejectedNamingTheFlag) {
  struct Case {
    std::vector<std::string> flags;
    std::string expected;
  } cases[] = {
      {{"--memory", "0"}, "--memory"},
      {{"--memory", "12Q"}, "--memory"},
      {{"--cpus", "-1"}, "cpus"},
      {{"--cpus", "lots"}, "cpus"},
      {{"--pids", "0"}, "--pids"},
      {{"--net", "host"}, "--net"},
      {{"--tmpfs-size", "x"}, "--tmpfs-size"},
      {{"--timeout", "soon"}, "--timeout"},
      {{"--env", "NOEQUALS"}, "--env"},
      {{"--user", "root"}, "--user"},
  };
  for (const auto& c : cases) {
    auto args = c.flags;
    args.insert(args.end(), {"--", "true"});
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 125) << c.flags[0] << " " << c.flags[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
}

TEST_F(RunTest, MissingImageAndUnwritableDataDirAreClearErrors) {
  auto missing = env_->Ember({"run", "--image", "nope", "--", "true"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  auto r = testing::RunCommand({testing::EmberBinary(), "--data-dir", "/proc/ember-data",
                                "--run-dir", env_->run_dir(), "run", "--", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("/proc/ember-data"), std::string::npos) << r.err;
}

TEST_F(RunTest, TimeoutKillsAndExits124WithAReason) {
  auto r = Run({"--timeout", "500ms", "--", "sleep", "30"});
  EXPECT_EQ(r.exit_code, 124);
  EXPECT_NE(r.err.find("timed out after 500ms"), std::string::npos) << r.err;
}

TEST_F(RunTest, OomKillIsReportedWith137) {
  auto r = Run({"--memory", "16M", "--", "sh", "-c",
                "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"});
  EXPECT_EQ(r.exit_code, 137) << r.err;
  EXPECT_NE(r.err.find("out of memory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("16M"), std::string::npos) << r.err;
}

TEST_F(RunTest, FullWritableLayerIsReported) {
  auto r = Run({"--tmpfs-size", "4M", "--", "dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=10"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("No space left"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("filled its writable layer (4M"), std::string::npos) << r.err;
}

TEST_F(RunTest, EachRunStartsFromAnEmptyWritableLayer) {
  EXPECT_EQ(Run({"--", "sh", "-c", "echo x > /etc/marker"}).exit_code, 0);
  auto r = Run({"--", "cat", "/etc/marker"});
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(RunTest, SigtermIsForwardedThenEnforcedAfterTheStopTimeout) {
  ::setenv("EMBER_CGROUP_NAME", env_->cgroup_name().c_str(), 1);
  ::setenv("EMBER_IMAGE_LINGER", "0", 1);
  auto ember = ChildProcess::Spawn(
      {testing::EmberBinary(), "--data-dir", env_->data_dir(), "--run-dir", env_->run_dir(), "run",
       "--image", "busybox", "--stop-timeout", "300ms", "--", "sleep", "100"},
      /*capture_output=*/true);
  ::unsetenv("EMBER_CGROUP_NAME");
  ::unsetenv("EMBER_IMAGE_LINGER");
  ASSERT_TRUE(ember) << ember.error().ToString();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (env_->Leaks().find("processes") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(ember->Signal(SIGTERM));
  // `sleep` as pid 1 has no SIGTERM handler, so it ignores the forwarded signal: ember kills it
  // after the stop timeout and says so.
  auto result = ember->WaitWithOutput();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->first.code, 137) << result->second;
  EXPECT_NE(result->second.find("did not stop within 300ms of SIGTERM"), std::string::npos)
      << result->second;
}

TEST_F(RunTest, IdleImageMountsLingerThenGo) {
  const std::map<std::string, std::string> linger = {{"EMBER_IMAGE_LINGER", "2s"}};
  auto run = env_->Ember({"run", "--image", "busybox", "--", "true"}, "", 60, linger);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(env_->Leaks().find("mount"), std::string::npos) << "the image should stay mounted";
  // Any ember command collects mounts idle for longer than the linger, and only those.
  ASSERT_EQ(env_->Ember({"image", "ls"}, "", 60, linger).exit_code, 0);
  EXPECT_NE(env_->Leaks().find("mount"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  ASSERT_EQ(env_->Ember({"image", "ls"}, "", 60, linger).exit_code, 0);
  EXPECT_EQ(env_->Leaks(), "");
  // `ember image unmount` does not wait.
  ASSERT_EQ(env_->Ember({"run", "--image", "busybox", "--", "true"}, "", 60, linger).exit_code, 0);
  EXPECT_NE(env_->Leaks().find("mount"), std::string::npos);
  auto unmount = env_->Ember({"image", "unmount"}, "", 60, linger);
  EXPECT_EQ(unmount.exit_code, 0) << unmount.err;
  EXPECT_NE(unmount.err.find("unmounted 1 idle image"), std::string::npos) << unmount.err;
  EXPECT_EQ(env_->Leaks(), "");
}

TEST_F(RunTest, CleanupRemovesIdleMountsAndTheCgroupPool) {
  const std::map<std::string, std::string> linger = {{"EMBER_IMAGE_LINGER", "1h"}};
  ASSERT_EQ(env_->Ember({"run", "--image", "busybox", "--", "true"}, "", 60, linger).exit_code, 0);
  auto pool_dirs = [&] {
    int found = 0;
    for (const char* root : {"/sys/fs/cgroup/memory/", "/sys/fs/cgroup/pids/", "/sys/fs/cgroup/"}) {
      found += PathExists(root + env_->cgroup_name()) ? 1 : 0;
    }
    return found;
  };
  EXPECT_GT(pool_dirs(), 0);
  EXPECT_NE(env_->Leaks().find("mount"), std::string::npos);
  auto cleanup = env_->Ember({"cleanup"});
  EXPECT_EQ(cleanup.exit_code, 0) << cleanup.err;
  EXPECT_EQ(pool_dirs(), 0);
  EXPECT_EQ(env_->Leaks(), "");
}

TEST_F(RunTest, KilledEmberTakesItsSandboxAlongAndTheNextRunCleansUp) {
  ::setenv("EMBER_CGROUP_NAME", env_->cgroup_name().c_str(), 1);
  auto ember = ChildProcess::Spawn(
      {testing::EmberBinary(), "--data-dir", env_->data_dir(), "--run-dir", env_->run_dir(), "run",
       "--image", "busybox", "--", "sh", "-c", "echo ready; sleep 100 & sleep 100"},
      /*capture_output=*/true);
  ::unsetenv("EMBER_CGROUP_NAME");
  ASSERT_TRUE(ember) << ember.error().ToString();
  // Wait until the sandbox runs: its processes show up in the env's cgroups.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (env_->Leaks().find("processes") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(env_->Leaks().find("processes"), std::string::npos) << "sandbox never started";
  ember->KillAndReap();  // SIGKILL: no chance to tear anything down
  // The sandbox's pid 1 dies with its parent (PDEATHSIG), and the kernel kills the rest.
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (env_->Leaks().find("processes") != std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(env_->Leaks().find("processes"), std::string::npos) << env_->Leaks();
  // The image mount of the dead ember is still there; the next run collects it.
  auto next = Run({"--", "true"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(env_->Leaks(), "");
}

}  // namespace
}  // namespace ember
