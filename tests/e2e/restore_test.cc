// Cold and warm boot through the daemon (issue 5): `ember snapshot NAME` checkpoints an instance
// at its entry point, and forced `?boot=warm` / `?boot=cold` invocations restore fresh instances
// from the image. Each restored instance must carry the import-time state of the snapshot (its
// init did not run again) and still be unique (random reseeded, its own id, hostname and pid 1),
// with the current wall clock.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "e2e/fork_fixture.h"

namespace ember {
namespace {

using json = nlohmann::json;

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class RestoreTest : public testing::ForkFixture {
 protected:
  // Takes the function's snapshot with the CLI and returns GET /v1/functions/NAME's "snapshot".
  // Snapshot files are removed in the background (after a working-set rewrite under way).
  static bool GoneSoon(const std::string& path) {
    for (int i = 0; i < 100 && PathExists(path); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return !PathExists(path);
  }

  json Snapshot(const std::string& name) {
    auto r = env_->Ember({"snapshot", name});
    EXPECT_EQ(r.exit_code, 0) << r.err << "\ndaemon: " << daemon_->Output();
    EXPECT_NE(r.out.find("snapshot of " + name), std::string::npos) << r.out;
    return Function(name)["snapshot"];
  }
};

TEST_F(RestoreTest, TwentyRestoredInstancesCarryTheSnapshotsInitAndAreEachUnique) {
  Deploy(PythonBundle("unique",
                      "import os, random, secrets, socket, time, uuid\n"
                      "at_import = random.random()\n"
                      "imported_at = time.time()\n"
                      "def handle(event, context):\n"
                      "    return {'random': random.random(), 'uuid': uuid.uuid4().hex,\n"
                      "            'token': secrets.token_hex(8), 'host': socket.gethostname(),\n"
                      "            'instance': os.environ.get('EMBER_INSTANCE'),\n"
                      "            'time': time.time(), 'pid': os.getpid(),\n"
                      "            'at_import': at_import, 'imported_at': imported_at}\n",
                      "template = \"none\"\nmax_instances = 30\n"));
  json snapshot = Snapshot("unique");
  ASSERT_TRUE(snapshot.is_object()) << Function("unique").dump();
  EXPECT_EQ(snapshot["state"], "ready") << snapshot.dump();
  EXPECT_GT(snapshot["size_bytes"].get<uint64_t>(), 0u);

  std::set<double> randoms, at_import;
  std::set<std::string> uuids, tokens, hosts, ids;
  for (int i = 0; i < 20; ++i) {
    std::string mode = i % 4 == 3 ? "cold" : "warm";
    double before = WallSeconds();
    auto r = Invoke("unique", "{}", "?boot=" + mode);
    double after = WallSeconds();
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), mode);
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
    EXPECT_EQ(b["pid"], 1) << "the restored agent is pid 1 of its own namespace: " << r.body;
    // The import ran before the snapshot, not in this instance.
    EXPECT_LT(b["imported_at"].get<double>(), before) << r.body;
    EXPECT_GE(b["time"].get<double>(), before - 2) << r.body;
    EXPECT_LE(b["time"].get<double>(), after + 2) << r.body;
  }
  EXPECT_EQ(ids.size(), 20u) << "every forced restore is a fresh instance";
  // The first invocation after a restore recorded the working set cold boots prefetch.
  json recorded;
  for (int i = 0; i < 100; ++i) {
    recorded = Function("unique")["snapshot"];
    if (recorded.value("working_set_pages", 0) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(recorded.value("working_set_pages", 0), 0) << recorded.dump();
  EXPECT_EQ(at_import.size(), 1u) << "every instance carries the snapshot's import";
  EXPECT_EQ(randoms.size(), 20u) << "random was not reseeded after restore";
  EXPECT_EQ(uuids.size(), 20u);
  EXPECT_EQ(tokens.size(), 20u);
  EXPECT_EQ(hosts.size(), 20u);
}

TEST_F(RestoreTest, HeavyImportsRestoreAndServeRepeatedly) {
  Deploy(
      PythonBundle("heavy",
                   "import json, decimal, email.parser, http.client, xml.etree.ElementTree\n"
                   "import sqlite3, asyncio, unittest, statistics\n"
                   "TABLE = {i: str(i) * 3 for i in range(20000)}\n"
                   "def handle(event, context):\n"
                   "    n = event.get('n', 1)\n"
                   "    blob = [TABLE[i] for i in range(n)]\n"
                   "    db = sqlite3.connect(':memory:')\n"
                   "    db.execute('create table t (x)')\n"
                   "    db.executemany('insert into t values (?)', [(len(b),) for b in blob])\n"
                   "    total = db.execute('select sum(x) from t').fetchone()[0]\n"
                   "    return {'total': total, 'mean': statistics.mean(len(b) for b in blob)}\n",
                   "template = \"none\"\n"));
  ASSERT_EQ(Snapshot("heavy").value("state", ""), "ready");
  for (const char* mode : {"cold", "warm"}) {
    auto r = Invoke("heavy", R"({"n": 10000})", std::string("?boot=") + mode);
    ASSERT_EQ(r.status, 200) << r.body << "\ndaemon: " << daemon_->Output();
    EXPECT_EQ(Header(r, "X-Ember-Boot-Mode"), mode);
    // sum of len(str(i) * 3) for i < 10000: 3 * (10 + 180 + 2700 + 36000)
    EXPECT_EQ(Body(r)["total"], 116670) << r.body;
    // The same instance serves again (its heap grows and shrinks after the restore).
    auto again = Invoke("heavy", R"({"n": 20000})");
    ASSERT_EQ(again.status, 200) << again.body;
  }
}

// On-demand I/O reconnection: a file the function opened at import is not reopened by a restore
// until the instance uses it, and then reads on from where it was.
TEST_F(RestoreTest, FilesOpenedAtImportAreReopenedOnFirstUse) {
  std::string dir =
      PythonBundle("files",
                   "import os\n"
                   "DATA = open(os.path.join(os.path.dirname(__file__), 'data.txt'))\n"
                   "DATA.seek(6)\n"
                   "def handle(event, context):\n"
                   "    link = lambda: os.readlink('/proc/self/fd/%d' % DATA.fileno())\n"
                   "    before = link()\n"
                   "    text = DATA.read() if event.get('read') else None\n"
                   "    return {'before': before, 'after': link(), 'text': text}\n",
                   "template = \"none\"\n");
  ASSERT_TRUE(WriteFileAtomic(dir + "/data.txt", "hello lazy world\n"));
  Deploy(dir);
  ASSERT_EQ(Snapshot("files").value("state", ""), "ready");

  auto untouched = Invoke("files", "{}", "?boot=warm");
  ASSERT_EQ(untouched.status, 200) << untouched.body << "\ndaemon: " << daemon_->Output();
  json u = Body(untouched);
  EXPECT_EQ(u["before"], u["after"]) << untouched.body;
  EXPECT_EQ(u["after"].get<std::string>().find("data.txt"), std::string::npos)
      << "a restore that never used the file has not reopened it: " << untouched.body;

  for (const char* mode : {"warm", "cold"}) {
    auto read = Invoke("files", R"({"read": true})", std::string("?boot=") + mode);
    ASSERT_EQ(read.status, 200) << read.body;
    json r = Body(read);
    EXPECT_EQ(r["text"], "lazy world\n") << "read on from the offset at checkpoint: " << read.body;
    EXPECT_EQ(r["after"], "/function/data.txt") << read.body;
  }
}

TEST_F(RestoreTest, BootModesNeedASnapshotAndARedeployDropsIt) {
  std::string dir = PythonBundle("hello", "def handle(event, context):\n    return 'v1'\n",
                                 "template = \"none\"\n");
  Deploy(dir);
  auto refused = Invoke("hello", "{}", "?boot=warm");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("no snapshot"), std::string::npos) << refused.body;
  EXPECT_TRUE(Function("hello")["snapshot"].is_null());

  json snapshot = Snapshot("hello");
  ASSERT_EQ(snapshot.value("state", ""), "ready") << snapshot.dump();
  std::string path = snapshot["path"];
  ASSERT_TRUE(PathExists(path));
  auto warm = Invoke("hello", "{}", "?boot=warm");
  ASSERT_EQ(warm.status, 200) << warm.body;
  EXPECT_EQ(Body(warm), "v1");

  // A new version must not be restored from the old one's image.
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/handler.py", "def handle(event, context):\n    return 'v2'\n"));
  Deploy(dir);
  EXPECT_TRUE(GoneSoon(path)) << "the old version's snapshot was not removed";
  EXPECT_TRUE(Function("hello")["snapshot"].is_null());
  auto unknown = env_->Ember({"snapshot", "nosuchfunction"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no function named"), std::string::npos) << unknown.err;

  // snapshot = "deploy" takes it in the background; rm deletes it.
  ASSERT_TRUE(WriteFileAtomic(dir + "/ember.toml",
                              "name = \"hello\"\nruntime = \"python3.11\"\n"
                              "handler = \"handler.handle\"\n"
                              "template = \"none\"\nsnapshot = \"deploy\"\n"));
  Deploy(dir);
  json taken;
  for (int i = 0; i < 600; ++i) {
    taken = Function("hello")["snapshot"];
    if (taken.is_object() && taken.value("state", "") != "taking") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(taken.value("state", ""), "ready") << taken.dump() << "\ndaemon: " << daemon_->Output();
  auto cold = Invoke("hello", "{}", "?boot=cold");
  ASSERT_EQ(cold.status, 200) << cold.body;
  EXPECT_EQ(Body(cold), "v2");
  auto removed = env_->Ember({"rm", "hello"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_TRUE(GoneSoon(taken["path"].get<std::string>()));
}

}  // namespace
}  // namespace ember
