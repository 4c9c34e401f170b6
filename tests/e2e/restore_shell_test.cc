// Restore shells through the daemon: once a function has a snapshot, the daemon keeps restore
// sandboxes built and parked (ember-restore --parked), so a cold or warm boot only hands one its
// instance. A restore takes a shell and the pool is refilled; a shell that died parked, or that
// died with its handoff unread, is replaced by a new sandbox for that restore; removing the
// function leaves no shell behind.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fork_fixture.h"

namespace ember {
namespace {

using json = nlohmann::json;

// Host pids of the daemon's parked restore shells: ember-restore with "--parked" in its argv,
// whose parent is the daemon.
std::vector<pid_t> ParkedShells(pid_t daemon) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* entry = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::string dir = "/proc/" + std::to_string(pid);
    auto cmdline = ReadFile(dir + "/cmdline");
    auto stat = ReadFile(dir + "/stat");
    if (!cmdline || !stat || cmdline->find("ember-restore") == std::string::npos ||
        cmdline->find("--parked") == std::string::npos) {
      continue;
    }
    // stat: "pid (comm) state ppid ...": the comm may hold spaces, so parse after the ')'.
    size_t close = stat->rfind(')');
    if (close == std::string::npos) continue;
    pid_t ppid = 0;
    char state = 0;
    if (std::sscanf(stat->c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == daemon) {
      found.push_back(pid);
    }
  }
  ::closedir(proc);
  return found;
}

class RestoreShellTest : public testing::ForkFixture {
 protected:
  json Shells(const std::string& name) { return Function(name)["snapshot"]["shells"]; }

  // Waits until the function's pool holds `ready` parked shells.
  json WaitForShells(const std::string& name, size_t ready) {
    json shells;
    for (int i = 0; i < 300; ++i) {
      shells = Shells(name);
      if (shells.is_object() && shells.value("ready", 0u) >= ready) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return shells;
  }

  // Deploys and snapshots `name`, waits for its pool to park a shell; the parked shells' pids.
  void ParkShells(const std::string& name, std::vector<pid_t>* parked) {
    ASSERT_NO_FATAL_FAILURE(DeployAndSnapshot(name));
    ASSERT_GE(WaitForShells(name, 1).value("ready", 0u), 1u);
    *parked = ParkedShells(daemon_->pid());
    ASSERT_FALSE(parked->empty());
  }

  // A warm boot that the daemon had to move into a new sandbox: it answers as its own instance,
  // and the daemon's log says why (`logged`).
  void ExpectRestoredInANewSandbox(const daemon::HttpResponse& r, const std::string& logged) {
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Body(r)["host"], Header(r, "X-Ember-Instance")) << r.body;
    EXPECT_NE(daemon_->Output().find(logged), std::string::npos) << daemon_->Output();
  }

  void DeployAndSnapshot(const std::string& name) {
    Deploy(PythonBundle(name,
                        "import os, socket\n"
                        "def handle(event, context):\n"
                        "    return {'host': socket.gethostname(), 'pid': os.getpid()}\n",
                        "template = \"none\"\n"));
    auto r = env_->Ember({"snapshot", name});
    ASSERT_EQ(r.exit_code, 0) << r.err << "\ndaemon: " << daemon_->Output();
  }
};

TEST_F(RestoreShellTest, ARestoreTakesAParkedShellAndThePoolIsRefilled) {
  ASSERT_NO_FATAL_FAILURE(DeployAndSnapshot("shelled"));
  json shells = WaitForShells("shelled", 1);
  ASSERT_GE(shells.value("ready", 0u), 1u) << Function("shelled").dump();
  EXPECT_GE(ParkedShells(daemon_->pid()).size(), 1u);

  // Cold last: a cold boot evicts the image, and warm boots need it resident.
  for (const char* mode : {"warm", "warm", "cold"}) {
    auto r = Invoke("shelled", "{}", std::string("?boot=") + mode);
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), mode);
    json b = Body(r);
    // The shell was built under another name: it took the instance's.
    EXPECT_EQ(b["host"], Header(r, "X-Ember-Instance")) << r.body;
    EXPECT_EQ(b["pid"], 1) << r.body;
    // Refilled in the background before the next restore needs it.
    ASSERT_GE(WaitForShells("shelled", 1).value("ready", 0u), 1u);
  }
  EXPECT_EQ(Shells("shelled").value("misses", 1u), 0u)
      << "every restore found a parked shell: " << Shells("shelled").dump();
  EXPECT_EQ(daemon_->Output().find("into a new sandbox"), std::string::npos) << daemon_->Output();

  // Removing the function stops its shells: no parked restorer of this daemon is left.
  ASSERT_EQ(env_->Ember({"rm", "shelled"}).exit_code, 0);
  std::vector<pid_t> left;
  for (int i = 0; i < 100; ++i) {
    left = ParkedShells(daemon_->pid());
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(left.empty()) << left.size() << " parked shell(s) left after ember rm";
}

TEST_F(RestoreShellTest, AShellThatDiedParkedIsReplacedByANewSandbox) {
  std::vector<pid_t> parked;
  ASSERT_NO_FATAL_FAILURE(ParkShells("fragile", &parked));
  // Our daemon's shells, found by their parent: killed as an OOM kill or an admin would.
  for (pid_t pid : parked) ASSERT_EQ(::kill(pid, SIGKILL), 0);
  for (int i = 0; i < 100 && !ParkedShells(daemon_->pid()).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  ExpectRestoredInANewSandbox(Invoke("fragile", "{}", "?boot=warm"), "into a new sandbox");
}

// A shell killed in the instant of its handoff (its memory already gone, its files not yet
// closed) takes the handoff's sendmsg and then drops it unread; CI saw that once. A stopped shell
// makes the instant last: the message queues on its socket, nobody reads it, and the kill drops
// it. The daemon must tell that from a restore that failed, and restore into a new sandbox.
TEST_F(RestoreShellTest, AShellKilledWithItsHandoffUnreadIsReplacedByANewSandbox) {
  std::vector<pid_t> parked;
  ASSERT_NO_FATAL_FAILURE(ParkShells("dropped", &parked));
  for (pid_t pid : parked) ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  auto pending =
      std::async(std::launch::async, [this] { return Invoke("dropped", "{}", "?boot=warm"); });
  // The daemon hands a shell its instance within milliseconds of the request (one sendmsg on
  // the io thread); a second is ample even on a loaded machine.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  for (pid_t pid : parked) ASSERT_EQ(::kill(pid, SIGKILL), 0);

  ExpectRestoredInANewSandbox(pending.get(), "died before it read its handoff");
}

}  // namespace
}  // namespace ember
