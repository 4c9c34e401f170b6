// Test fixtures that clean up after themselves, even when the test fails: a private data dir,
// run dir and cgroup name for each test, a runner for the `ember` binary, a minimal busybox
// rootfs to import as an image, and a check that nothing (mounts, cgroups, processes) leaked.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ember::testing {

// Root of the build's binaries (ember, test probes).
std::string EmberBinary();
std::string TestBinDir();  // static probes: build/test-bin

// Why a privileged test cannot run here, or "" if it can (root, user namespaces, cgroups).
std::string MissingPrivileges();

#define EMBER_REQUIRE_PRIVILEGES()                                \
  do {                                                            \
    std::string missing_ = ::ember::testing::MissingPrivileges(); \
    if (!missing_.empty()) GTEST_SKIP() << "needs " << missing_;  \
  } while (0)

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;  // 128+N if ember itself died of signal N
  std::string out;
  std::string err;
};

// An isolated ember installation: its own data dir, run dir and cgroup name. The destructor
// unmounts anything left under its directories and removes its cgroups, so a failing test never
// leaks into the next one (and Leaks() tells the test whether it would have).
class EmberEnv {
 public:
  EmberEnv();
  ~EmberEnv();
  EmberEnv(const EmberEnv&) = delete;
  EmberEnv& operator=(const EmberEnv&) = delete;

  const std::string& data_dir() const { return data_dir_; }
  const std::string& run_dir() const { return run_dir_; }
  const std::string& cgroup_name() const { return cgroup_name_; }
  const std::string& root() const { return tmp_.path(); }

  // Runs `ember --data-dir D --run-dir R ARGS...` with EMBER_CGROUP_NAME set; feeds `input` on
  // stdin. `timeout_s` kills ember if it hangs (the test then fails on exit_code).
  RunResult Ember(const std::vector<std::string>& args, const std::string& input = "",
                  int timeout_s = 120, const std::map<std::string, std::string>& env = {}) const;

  // Imports a busybox rootfs (with the test probes in /bin) as image `name`; fails the test on
  // error. Returns the image name.
  std::string ImportBusyboxImage(const std::string& name = "busybox") const;

  // Makes the `python3.11` image (Debian minbase + python3.11, what functions run on) available
  // in this env. It is built once per build tree with `ember image build` (about a minute) into a
  // cache beside the binaries, then hard-linked into this env's store. Returns the image name.
  std::string ImportPythonImage() const;

  // Mounts under this env's dirs and processes in its cgroups, described; "" when clean.
  // Image mounts are expected to be gone once no sandbox uses them.
  std::string Leaks() const;

 private:
  TempDir tmp_;
  std::string data_dir_;
  std::string run_dir_;
  std::string cgroup_name_;
};

// A test with its own EmberEnv and the busybox image imported; after each test it checks that
// nothing leaked. Run() is `ember run --image busybox ARGS...`.
class BusyboxSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  RunResult Run(std::vector<std::string> args, const std::string& input = "", int timeout_s = 120);
  std::optional<EmberEnv> env_;
};

// Creates a minimal rootfs in `dir`: busybox with its applets, /etc/passwd and /etc/group, the
// static test probes in /bin, empty /tmp, /proc, /dev mount points.
void MakeBusyboxRootfs(const std::string& dir);

// Runs a host command (argv) and returns its result; for fixture set-up.
RunResult RunCommand(const std::vector<std::string>& argv, const std::string& input = "",
                     int timeout_s = 120, const std::map<std::string, std::string>& env = {});

}  // namespace ember::testing
