// Restore of the zdtm programs (tests/zdtm): each is started, checkpointed at its read() on the
// control socket, killed, and restored by ember-restore in a fresh pid namespace at its recorded
// pid; then it gets its byte and must answer "ok" (it checks its own state). Both memory modes,
// and 20 concurrent restores from one image.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "integration/restore_harness.h"
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

class RestoreTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (ptrace, pid namespaces, set_tid)";
  }
  std::vector<std::string> Argv(const std::string& program) {
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
                      Case{"dontneed", MemoryMode::kOverlay}),
    CaseName);

// The fan-out: 20 instances restored at once from one immutable image, each a complete,
// independent process (its own pid namespace, same recorded pid) that says "ok".
class ConcurrentRestoreTest : public RestoreTest {};

TEST_P(ConcurrentRestoreTest, TwentyFromOneImage) {
  constexpr int kInstances = 20;
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
                      Case{"dontneed", MemoryMode::kOverlay}, Case{"threads", MemoryMode::kCopy}),
    CaseName);

}  // namespace
}  // namespace ember::snapshot
