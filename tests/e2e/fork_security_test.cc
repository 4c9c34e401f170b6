// A fork-booted (issue 4) or restored (issue 5) instance is as isolated as a plain-booted one: the
// sandbox-core escape probe (tests/util/security_probe.c) runs as a subprocess of a python handler,
// in an instance forked from a template and in a plain one, and every attempt must fail with the
// errno that util/security_expectations.h lists. From inside the child, the template (which ran the
// function's import-time code) is out of sight: its pid namespace holds only the child's own
// processes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "e2e/fork_fixture.h"
#include "util/security_expectations.h"

namespace ember {
namespace {

using json = nlohmann::json;

class ForkSecurityTest : public testing::ForkFixture {
 protected:
  // A function whose bundle holds the static probe; its handler runs it, or with {"ps": true}
  // reports the pids /proc shows while one subprocess runs, and pid 1's command line.
  void DeployProbe() {
    std::string dir = PythonBundle(
        "probe",
        "import os, subprocess\n"
        "HERE = os.path.dirname(os.path.abspath(__file__))\n"
        "def handle(event, context):\n"
        "    if event.get('ps'):\n"
        "        child = subprocess.Popen(['sleep', '30'])\n"
        "        try:\n"
        "            pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "            with open('/proc/1/cmdline', 'rb') as f:\n"
        "                argv = [a.decode() for a in f.read().split(b'\\0') if a]\n"
        "            return {'pids': pids, 'me': os.getpid(), 'child': child.pid, 'argv': argv}\n"
        "        finally:\n"
        "            child.kill()\n"
        "            child.wait()\n"
        "    run = subprocess.run([os.path.join(HERE, 'security_probe')], capture_output=True,\n"
        "                         text=True)\n"
        "    return {'code': run.returncode, 'out': run.stdout, 'err': run.stderr}\n",
        "max_instances = 4\n");
    auto copied = testing::RunCommand(
        {"cp", "--preserve=mode", testing::TestBinDir() + "/security_probe", dir + "/"});
    ASSERT_EQ(copied.exit_code, 0) << copied.err;
    Deploy(dir);
    ASSERT_FALSE(WaitForTemplate("probe", "ready").is_null());
  }

  // Runs the probe in a fresh instance booted in `mode` and holds its output to Expected(), as
  // tests/integration/security_test.cc does for `ember run`.
  void ProbeRefusesEveryEscape(const std::string& mode) {
    SCOPED_TRACE("boot mode " + mode);
    auto r = Invoke("probe", "{}", "?boot=" + mode);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(Header(r, "X-Ember-Boot-Mode"), mode);
    json result = Body(r);
    ASSERT_EQ(result["code"], 0) << r.body;
    const std::string out = result["out"];
    testing::ExpectEveryEscapeRefused(out);
  }
};

TEST_F(ForkSecurityTest, EveryEscapeAttemptIsRefusedInForkAndPlainInstances) {
  DeployProbe();
  ProbeRefusesEveryEscape("fork");
  ProbeRefusesEveryEscape("plain");
}

// Issue 5: the same probe in instances restored from a snapshot (cold and warm boot), whose
// pid 1 ran ember-restore with extra capabilities before it became the agent.
TEST_F(ForkSecurityTest, EveryEscapeAttemptIsRefusedInRestoredInstances) {
  DeployProbe();
  auto taken = env_->Ember({"snapshot", "probe"});
  ASSERT_EQ(taken.exit_code, 0) << taken.err << "\ndaemon: " << daemon_->Output();
  ProbeRefusesEveryEscape("warm");
  ProbeRefusesEveryEscape("cold");
  // Only the restored instance's own processes, and pid 1 shows the agent, not the restorer.
  auto r = Invoke("probe", R"({"ps": true})", "?boot=warm");
  ASSERT_EQ(r.status, 200) << r.body;
  json seen = Body(r);
  EXPECT_EQ(seen["me"], 1) << r.body;
  EXPECT_EQ(seen["pids"].get<std::set<int>>(), (std::set<int>{1, seen["child"].get<int>()}))
      << r.body;
  ASSERT_FALSE(seen["argv"].empty()) << r.body;
  EXPECT_NE(seen["argv"][0].get<std::string>().find("ember-agent"), std::string::npos) << r.body;
}

TEST_F(ForkSecurityTest, TheTemplateIsInvisibleFromItsChildren) {
  DeployProbe();
  auto r = Invoke("probe", R"({"ps": true})", "?boot=fork");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Header(r, "X-Ember-Boot-Mode"), "fork");
  json seen = Body(r);
  EXPECT_EQ(seen["me"], 1) << r.body;
  auto pids = seen["pids"].get<std::set<int>>();
  EXPECT_EQ(pids, (std::set<int>{1, seen["child"].get<int>()}))
      << "only the child's own processes are visible: " << r.body;
  ASSERT_FALSE(seen["argv"].empty()) << r.body;
  EXPECT_NE(seen["argv"][0].get<std::string>().find("ember-agent"), std::string::npos)
      << "pid 1 is the agent: " << r.body;
}

}  // namespace
}  // namespace ember
