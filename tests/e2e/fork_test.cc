// Fork boot end to end (issue 4): a deployed function gets a template, `?boot=fork` forks
// instances from it, and each child is a fresh, unique instance with its own writable layer; a
// template that cannot fork (threads at import, the process runtime) is refused with a reason and
// the function still serves; templates follow the manifest's `template` key and redeploys; a
// fork-booted instance can be stopped and its crashes are reported like any other.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fork_fixture.h"

namespace ember {
namespace {

using json = nlohmann::json;

class ForkTest : public testing::ForkFixture {};

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool HasString(const json& list, const std::string& value) {
  for (const auto& item : list) {
    if (item.is_string() && item.get<std::string>() == value) return true;
  }
  return false;
}

TEST_F(ForkTest, TwentyForkBootedInstancesAreEachUnique) {
  Deploy(PythonBundle("unique",
                      "import os, random, secrets, socket, time, uuid\n"
                      "at_import = random.random()\n"
                      "def handle(event, context):\n"
                      "    return {'random': random.random(), 'uuid': uuid.uuid4().hex,\n"
                      "            'token': secrets.token_hex(8), 'host': socket.gethostname(),\n"
                      "            'instance': os.environ.get('EMBER_INSTANCE'),\n"
                      "            'time': time.time(), 'pid': os.getpid(),\n"
                      "            'at_import': at_import}\n",
                      "max_instances = 30\n"));
  // The convention, as a plain instance shows it: hostname and EMBER_INSTANCE are the instance id.
  auto plain = Invoke("unique", "{}", "?boot=plain");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(Body(plain)["host"], Header(plain, "X-Ember-Instance")) << plain.body;
  EXPECT_EQ(Body(plain)["instance"], Header(plain, "X-Ember-Instance")) << plain.body;
  ASSERT_FALSE(WaitForTemplate("unique", "ready").is_null());

  std::set<double> randoms, at_import;
  std::set<std::string> uuids, tokens, hosts, ids;
  for (int i = 0; i < 20; ++i) {
    double before = WallSeconds();
    auto r = ForkInvoke("unique");
    double after = WallSeconds();
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), "fork");
    std::string id = Header(r, "X-Ember-Instance");
    json b = Body(r);
    ASSERT_TRUE(b.is_object()) << r.body;
    randoms.insert(b["random"].get<double>());
    at_import.insert(b["at_import"].get<double>());
    uuids.insert(b["uuid"].get<std::string>());
    tokens.insert(b["token"].get<std::string>());
    hosts.insert(b["host"].get<std::string>());
    ids.insert(id);
    EXPECT_EQ(b["host"], id) << r.body;
    EXPECT_EQ(b["instance"], id) << r.body;
    EXPECT_EQ(b["pid"], 1) << "the handler runs as pid 1 of its own namespace: " << r.body;
    // The clock is the host's, not the template's frozen one (a margin for coarse clocks only).
    EXPECT_GE(b["time"].get<double>(), before - 2) << r.body;
    EXPECT_LE(b["time"].get<double>(), after + 2) << r.body;
  }
  EXPECT_EQ(ids.size(), 20u) << "every forced fork boot is a fresh instance";
  // The children were forked from one import (the template's), not imported again; the plain
  // instance imported on its own.
  EXPECT_EQ(at_import.size(), 1u);
  EXPECT_EQ(at_import.count(Body(plain)["at_import"].get<double>()), 0u);
  EXPECT_EQ(randoms.size(), 20u) << "random was not reseeded after fork";
  EXPECT_EQ(uuids.size(), 20u);
  EXPECT_EQ(tokens.size(), 20u);
  EXPECT_EQ(hosts.size(), 20u);
  json t = Function("unique")["template"];
  EXPECT_EQ(t["children"], 20) << t.dump();
  EXPECT_GE(t["spawned"].get<int>(), 20) << t.dump();
}

TEST_F(ForkTest, ChildrenSeeTheTemplateFilesAsFrozenAndNotEachOthers) {
  // The import and the warmup event (run in the template before it froze) write files into the
  // template's /tmp and its root's writable layer; a child may overwrite them and add its own.
  Deploy(PythonBundle("files",
                      "import os\n"
                      "PATHS = ('/tmp/at_import.txt', '/var/tmp/at_import.txt')\n"
                      "def write(path, text, mode='w'):\n"
                      "    with open(path, mode) as f:\n"
                      "        f.write(text)\n"
                      "for p in PATHS:\n"
                      "    write(p, 'imported\\n')\n"
                      "def handle(event, context):\n"
                      "    if event.get('warmup'):\n"
                      "        for p in PATHS:\n"
                      "            write(p, 'warmed\\n', 'a')\n"
                      "        return 'warm'\n"
                      "    me = os.environ['EMBER_INSTANCE']\n"
                      "    seen = {p: open(p).read() for p in PATHS}\n"
                      "    if event.get('write'):\n"
                      "        for d in ('/tmp', '/var/tmp'):\n"
                      "            write(d + '/child_' + me, me)\n"
                      "        for p in PATHS:\n"
                      "            write(p, 'overwritten by ' + me)\n"
                      "    return {'seen': seen, 'tmp': sorted(os.listdir('/tmp')),\n"
                      "            'var_tmp': sorted(os.listdir('/var/tmp'))}\n",
                      "warmup = '{\"warmup\": true}'\n"));
  ASSERT_FALSE(WaitForTemplate("files", "ready").is_null());

  auto first = ForkInvoke("files", R"({"write": true})");
  ASSERT_EQ(first.status, 200) << first.body;
  std::string a = Header(first, "X-Ember-Instance");
  json fa = Body(first);
  for (const char* p : {"/tmp/at_import.txt", "/var/tmp/at_import.txt"}) {
    EXPECT_EQ(fa["seen"][p], "imported\nwarmed\n") << p << ": " << first.body;
  }
  EXPECT_TRUE(HasString(fa["tmp"], "at_import.txt")) << first.body;
  EXPECT_TRUE(HasString(fa["tmp"], "child_" + a)) << first.body;
  EXPECT_TRUE(HasString(fa["var_tmp"], "child_" + a)) << first.body;

  auto second = ForkInvoke("files");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(Header(second, "X-Ember-Boot-Mode"), "fork");
  EXPECT_NE(Header(second, "X-Ember-Instance"), a);
  json fb = Body(second);
  // The first child's writes went to its own layer: the second sees the template's files as the
  // template left them, and none of the first child's.
  for (const char* p : {"/tmp/at_import.txt", "/var/tmp/at_import.txt"}) {
    EXPECT_EQ(fb["seen"][p], "imported\nwarmed\n") << p << ": " << second.body;
  }
  EXPECT_TRUE(HasString(fb["tmp"], "at_import.txt")) << second.body;
  EXPECT_FALSE(HasString(fb["tmp"], "child_" + a)) << second.body;
  EXPECT_FALSE(HasString(fb["var_tmp"], "child_" + a)) << second.body;
}

TEST_F(ForkTest, ThreadAtImportRefusesForkBootAndPlainBootServes) {
  Deploy(PythonBundle("threaded",
                      "import threading, time\n"
                      "def tick():\n"
                      "    while True:\n"
                      "        time.sleep(0.5)\n"
                      "threading.Thread(target=tick, name='ticker', daemon=True).start()\n"
                      "def handle(event, context):\n"
                      "    return threading.active_count()\n"));
  json t = WaitForTemplate("threaded", "refused");
  ASSERT_FALSE(t.is_null());
  std::string reason = t.value("reason", "");
  EXPECT_NE(reason.find("thread"), std::string::npos) << reason;
  EXPECT_NE(reason.find("ticker"), std::string::npos) << "the reason names the thread: " << reason;

  auto forced = ForkInvoke("threaded");
  EXPECT_EQ(forced.status, 409) << forced.body;
  EXPECT_EQ(Body(forced)["error"]["code"], "boot_mode_unavailable") << forced.body;
  EXPECT_NE(forced.body.find("thread"), std::string::npos) << forced.body;

  auto served = Invoke("threaded");
  ASSERT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(Header(served, "X-Ember-Boot-Mode"), "plain");
  EXPECT_EQ(served.body, "2") << "the plain instance keeps its import-time thread";

  auto listed = env_->Ember({"template", "ls"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("refused"), std::string::npos) << listed.out;
}

TEST_F(ForkTest, ProcessRuntimeIsRefusedAndStillServes) {
  Deploy(std::string(EMBER_SOURCE_DIR) + "/examples/process-shell");
  json t = WaitForTemplate("process-shell", "refused");
  ASSERT_FALSE(t.is_null());
  EXPECT_NE(t.value("reason", "").find("process runtime"), std::string::npos) << t.dump();

  auto forced = ForkInvoke("process-shell", R"("one two")");
  EXPECT_EQ(forced.status, 409) << forced.body;
  EXPECT_NE(forced.body.find("process runtime"), std::string::npos) << forced.body;
  for (int i = 0; i < 2; ++i) {
    auto r = Invoke("process-shell", R"("the quick brown fox")");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Body(r), json::parse(R"({"chars":19,"lines":1,"words":4})")) << r.body;
  }
}

TEST_F(ForkTest, TemplateNoneAndFirstInvokeFollowTheManifest) {
  Deploy(PythonBundle("never", "def handle(event, context):\n    return 'never'\n",
                      "template = \"none\"\n"));
  Deploy(PythonBundle("lazy", "def handle(event, context):\n    return 'lazy'\n",
                      "template = \"first-invoke\"\n"));
  EXPECT_TRUE(Function("never")["template"].is_null()) << Function("never").dump();
  EXPECT_TRUE(Function("lazy")["template"].is_null()) << Function("lazy").dump();

  auto never = Invoke("never");
  EXPECT_EQ(never.status, 200) << never.body;
  auto forced = ForkInvoke("never");
  EXPECT_EQ(forced.status, 409) << forced.body;
  EXPECT_NE(forced.body.find("template = \\\"none\\\""), std::string::npos) << forced.body;

  auto first = Invoke("lazy");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.body, "\"lazy\"");
  ASSERT_FALSE(WaitForTemplate("lazy", "ready").is_null());
  auto forked = ForkInvoke("lazy");
  ASSERT_EQ(forked.status, 200) << forked.body;
  EXPECT_EQ(forked.body, "\"lazy\"");
  EXPECT_EQ(Header(forked, "X-Ember-Boot-Mode"), "fork");

  // Still no template for "never", after all that.
  EXPECT_TRUE(Function("never")["template"].is_null()) << Function("never").dump();
  for (const auto& listed : Templates()) EXPECT_NE(listed["function"], "never") << listed.dump();
}

TEST_F(ForkTest, RedeployBuildsANewTemplateAndRetiresTheOld) {
  std::string dir = PythonBundle("versions",
                                 "import time\n"
                                 "def handle(event, context):\n"
                                 "    time.sleep(event.get('sleep', 0))\n"
                                 "    return 'v1'\n",
                                 "timeout = \"30s\"\n");
  Deploy(dir);
  json old_template = WaitForTemplate("versions", "ready");
  ASSERT_FALSE(old_template.is_null());
  const std::string old_id = old_template["id"];
  const int old_pid = old_template["pid"];

  // A fork-booted v1 instance stays busy across the redeploy, so the old template has a child.
  std::atomic<bool> answered{false};
  daemon::HttpResponse busy;
  std::thread caller([&] {
    busy = ForkInvoke("versions", R"({"sleep": 8})");
    answered = true;
  });
  bool in_flight = false;
  for (int i = 0; i < 600 && !in_flight; ++i) {
    for (const auto& instance : Instances()) {
      if (instance["boot_mode"] == "fork" && instance["in_flight"] == 1) in_flight = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(in_flight);
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/handler.py", "def handle(event, context):\n    return 'v2'\n"));
  Deploy(dir);
  json listed = Templates();
  bool still_busy = !answered;
  bool old_listed = false;
  for (const auto& t : listed) {
    if (t.value("id", "") != old_id) continue;
    old_listed = true;
    EXPECT_EQ(t["state"], "retiring") << listed.dump();
    if (still_busy) {
      EXPECT_EQ(t["children"], 1) << listed.dump();
    }
  }
  if (still_busy) {
    EXPECT_TRUE(old_listed) << "a template with a live child is kept: " << listed.dump();
  }

  json new_template = WaitForTemplate("versions", "ready");
  ASSERT_FALSE(new_template.is_null());
  EXPECT_NE(new_template["id"], old_id);
  EXPECT_NE(new_template["version"], old_template["version"]);
  for (int i = 0; i < 2; ++i) {
    auto r = ForkInvoke("versions");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "\"v2\"");
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), "fork");
  }
  caller.join();
  EXPECT_EQ(busy.status, 200) << busy.body;
  EXPECT_EQ(busy.body, "\"v1\"") << "the call in flight finishes on the old version";

  // Its last child gone, the old template is stopped and forgotten.
  bool gone = false;
  for (int i = 0; i < 600 && !gone; ++i) {
    gone = !PathExists("/proc/" + std::to_string(old_pid));
    for (const auto& t : Templates()) gone = gone && t.value("id", "") != old_id;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << Templates().dump();
}

// "N:controller[,controller]:/path" lines of /proc/PID/cgroup -> the path of `controller`.
std::string CgroupOf(int pid, const std::string& controller) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!text) return "";
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    size_t first = line.find(':');
    size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
    if (controllers.find("," + controller + ",") != std::string::npos) {
      return line.substr(second + 1);
    }
  }
  return "";
}

TEST_F(ForkTest, ChildrenShareTheTemplatesMemoryCgroupAndAreBoundedOneByOne) {
  if (!PathExists("/sys/fs/cgroup/memory/cgroup.procs")) {
    GTEST_SKIP() << "needs cgroup v1's memory hierarchy at /sys/fs/cgroup/memory (on v2 each "
                    "fork-boot child has a memory cgroup of its own)";
  }
  Deploy(PythonBundle("bounded",
                      "import os, resource\n"
                      "def handle(event, context):\n"
                      "    data = resource.getrlimit(resource.RLIMIT_DATA)[0]\n"
                      "    try:\n"
                      "        block = bytearray(event.get('mib', 0) << 20)\n"
                      "        allocated = len(block) >> 20\n"
                      "    except MemoryError:\n"
                      "        allocated = -1\n"
                      "    return {'data': data, 'allocated': allocated}\n",
                      "memory = \"64MiB\"\nmax_instances = 4\n"));
  json t = WaitForTemplate("bounded", "ready");
  ASSERT_FALSE(t.is_null());
  const int template_pid = t["pid"];
  std::set<std::string> cpu_cgroups;
  for (int i = 0; i < 2; ++i) {
    auto r = ForkInvoke("bounded", R"({"mib": 16})");
    ASSERT_EQ(r.status, 200) << r.body;
    json b = Body(r);
    EXPECT_EQ(b["allocated"], 16) << r.body;
    // The child's own growth is bounded: what it inherited plus the function's memory.
    EXPECT_GT(b["data"].get<int64_t>(), 64LL << 20) << r.body;
    EXPECT_LT(b["data"].get<int64_t>(), 1LL << 30) << r.body;
    std::string id = Header(r, "X-Ember-Instance");
    int pid = 0;
    for (const auto& instance : Instances()) {
      if (instance["id"] == id) pid = instance["pid"];
    }
    ASSERT_GT(pid, 1) << Instances().dump();
    // Memory: the template's cgroup; cpu and pids: a memory-less slot of the child's own.
    EXPECT_EQ(CgroupOf(pid, "memory"), CgroupOf(template_pid, "memory"));
    std::string cpu = CgroupOf(pid, "cpu");
    EXPECT_NE(cpu, CgroupOf(template_pid, "cpu"));
    EXPECT_NE(cpu.find("-fork/pool-"), std::string::npos) << cpu;
    EXPECT_EQ(CgroupOf(pid, "pids"), cpu);
    cpu_cgroups.insert(cpu);
  }
  EXPECT_EQ(cpu_cgroups.size(), 2u);
  auto greedy = ForkInvoke("bounded", R"({"mib": 256})");
  ASSERT_EQ(greedy.status, 200) << greedy.body;
  EXPECT_EQ(Body(greedy)["allocated"], -1)
      << "256 MiB in one instance of a 64 MiB function must fail: " << greedy.body;
}

TEST_F(ForkTest, OutputOfEachChildAndItsSubprocessesLandsInItsOwnLog) {
  Deploy(
      PythonBundle("talker",
                   "import os, subprocess, sys\n"
                   "def handle(event, context):\n"
                   "    me = os.environ['EMBER_INSTANCE']\n"
                   "    print('handler of', me, flush=True)\n"
                   "    sys.stderr.write('stderr of ' + me + '\\n')\n"
                   "    sys.stderr.flush()\n"
                   "    subprocess.run(['/bin/sh', '-c', 'echo subprocess of ' + me], check=True)\n"
                   "    return me\n"));
  ASSERT_FALSE(WaitForTemplate("talker", "ready").is_null());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = ForkInvoke("talker");
    ASSERT_EQ(r.status, 200) << r.body;
    ids.push_back(Body(r).get<std::string>());
  }
  const std::string dir = env_->data_dir() + "/logs/talker/";
  for (const auto& id : ids) {
    std::string log;
    for (int i = 0; i < 100; ++i) {
      log = ReadFile(dir + id + ".log").value_or("");
      if (log.find("subprocess of " + id) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (const char* what : {"handler of ", "stderr of ", "subprocess of "}) {
      EXPECT_NE(log.find(what + id), std::string::npos) << what << id << " in:\n" << log;
    }
    for (const auto& other : ids) {
      if (other != id) {
        EXPECT_EQ(log.find(other), std::string::npos) << other << " in " << id;
      }
    }
  }
}

TEST_F(ForkTest, ForkBootedInstancesCanBeRemovedAndTheirCrashesAreNamed) {
  Deploy(PythonBundle("mortal",
                      "import os\n"
                      "def handle(event, context):\n"
                      "    if event.get('exit'):\n"
                      "        os._exit(3)\n"
                      "    return os.getpid()\n"));
  ASSERT_FALSE(WaitForTemplate("mortal", "ready").is_null());
  auto r = ForkInvoke("mortal");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string id = Header(r, "X-Ember-Instance");
  int pid = 0;
  for (const auto& instance : Instances()) {
    if (instance["id"] == id) {
      EXPECT_EQ(instance["boot_mode"], "fork");
      pid = instance["pid"];
    }
  }
  ASSERT_GT(pid, 1) << "no host pid for " << id << ": " << Instances().dump();
  const std::string proc = "/proc/" + std::to_string(pid);
  ASSERT_TRUE(PathExists(proc));
  // The host pid is pid 1 in the instance's own namespace (last NSpid field).
  auto status = ReadFile(proc + "/status");
  ASSERT_TRUE(status);
  auto nspid = status->find("NSpid:");
  ASSERT_NE(nspid, std::string::npos);
  std::string line = status->substr(nspid, status->find('\n', nspid) - nspid);
  EXPECT_EQ(line.substr(line.find_last_of(" \t") + 1), "1") << line;

  auto removed = env_->Ember({"rm", "-i", id});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  bool gone = false;
  for (int i = 0; i < 600 && !gone; ++i) {
    gone = !PathExists(proc);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "instance " << id << " (host pid " << pid << ") is still running";
  for (const auto& instance : Instances()) {
    EXPECT_NE(instance["id"], id) << instance.dump();
  }

  auto crashed = ForkInvoke("mortal", R"({"exit": true})");
  EXPECT_EQ(crashed.status, 502) << crashed.body;
  EXPECT_EQ(Header(crashed, "X-Ember-Boot-Mode"), "fork");
  EXPECT_EQ(Body(crashed)["error"]["code"], "instance_crashed") << crashed.body;
  EXPECT_NE(crashed.body.find("exited with status 3"), std::string::npos) << crashed.body;

  // The template outlives its children: the next fork boot works.
  auto next = ForkInvoke("mortal");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(next.body, "1");
  EXPECT_EQ(Function("mortal")["template"]["state"], "ready");
}

// With --boot-concurrency 1 concurrent forced fork boots wait their turn: every one still gets
// its own fresh instance, none fails, and the gate reports itself in the metrics.
TEST_F(ForkTest, BootGateLetsConcurrentForkBootsThroughOneAtATime) {
  daemon_.reset();
  daemon_ = std::make_unique<testing::EmberDaemon>(
      *env_, std::vector<std::string>{"--boot-concurrency", "1"});
  ASSERT_EQ(daemon_->start_error(), "");
  Deploy(PythonBundle("gated", "def handle(event, context):\n    return 'ok'\n",
                      "max_instances = 20\n"));
  ASSERT_FALSE(WaitForTemplate("gated", "ready").is_null());
  constexpr int kBoots = 8;
  std::vector<daemon::HttpResponse> answers(kBoots);
  std::vector<std::thread> threads;
  for (int i = 0; i < kBoots; ++i) {
    threads.emplace_back([&, i] { answers[i] = ForkInvoke("gated"); });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  for (const auto& r : answers) {
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), "fork");
    ids.insert(Header(r, "X-Ember-Instance"));
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kBoots));
  auto metrics = daemon_->Request("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("ember_boots{state=\"waiting\"} 0"), std::string::npos)
      << metrics.body.substr(0, 2000);
  // Every child answered, so every one was ready and gave its slot back (a slot kept past its
  // boot would show here until the 1 s hold limit let it go, counted as overstayed).
  EXPECT_NE(metrics.body.find("ember_boots{state=\"in_progress\"} 0"), std::string::npos)
      << metrics.body.substr(0, 2000);
  EXPECT_NE(metrics.body.find("ember_boots_overstayed 0"), std::string::npos)
      << metrics.body.substr(0, 2000);
}

}  // namespace
}  // namespace ember
