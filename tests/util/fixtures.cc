#include "util/fixtures.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fs.h"
#include "base/mounts.h"
#include "sandbox/cgroup/pool.h"

extern char** environ;

namespace ember::testing {
namespace {

const char* kCgroupControllers[] = {"memory", "cpu", "pids", "cpuacct", "cpuset", "freezer"};

// Every cgroup directory named `name` at the top of a hierarchy, v1 or v2.
// The pool `name` and, beside it, the daemon's memory-less pool for fork-boot children.
std::vector<std::string> CgroupDirs(const std::string& name) {
  std::vector<std::string> dirs;
  for (const std::string& pool : {name, cgroup::ForkPoolName(name)}) {
    for (const char* c : kCgroupControllers) {
      std::string d = std::string("/sys/fs/cgroup/") + c + "/" + pool;
      if (PathExists(d)) dirs.push_back(d);
    }
    for (const char* top : {"/sys/fs/cgroup/", "/sys/fs/cgroup/unified/"}) {
      std::string d = std::string(top) + pool;
      if (PathExists(d + "/cgroup.procs")) dirs.push_back(d);
    }
  }
  return dirs;
}

void CollectProcs(const std::string& dir, std::vector<std::string>* procs) {
  auto content = ReadFile(dir + "/cgroup.procs");
  if (content && !content->empty()) procs->push_back(dir + ": " + *content);
  auto entries = ListDirectory(dir);
  if (!entries) return;
  for (const auto& e : *entries) {
    struct stat st {};
    std::string child = dir + "/" + e;
    if (::stat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) CollectProcs(child, procs);
  }
}

// Kills what is left in a cgroup tree (only test-owned cgroups reach here) and removes it.
void RemoveCgroupTree(const std::string& dir) {
  auto entries = ListDirectory(dir);
  if (entries) {
    for (const auto& e : *entries) {
      struct stat st {};
      std::string child = dir + "/" + e;
      if (::stat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) RemoveCgroupTree(child);
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto procs = ReadFile(dir + "/cgroup.procs");
    if (!procs || procs->empty()) break;
    std::istringstream in(*procs);
    pid_t pid;
    while (in >> pid) ::kill(pid, SIGKILL);
    ::usleep(10000);
  }
  ::rmdir(dir.c_str());
}

}  // namespace

std::string EmberBinary() { return std::string(EMBER_BIN_DIR) + "/ember"; }
std::string TestBinDir() { return std::string(EMBER_BIN_DIR) + "/../test-bin"; }

std::string MissingPrivileges() {
  if (::geteuid() != 0) return "root";
  auto max_userns = ReadFile("/proc/sys/user/max_user_namespaces");
  if (max_userns && std::atoi(max_userns->c_str()) == 0) return "user namespaces";
  if (!PathExists("/sys/fs/cgroup/memory/cgroup.procs") &&
      !PathExists("/sys/fs/cgroup/cgroup.controllers")) {
    return "a cgroup hierarchy with the memory controller";
  }
  return "";
}

TempDir::TempDir() {
  char templ[] = "/tmp/ember-test-XXXXXX";
  char* made = ::mkdtemp(templ);
  if (made == nullptr) std::abort();
  path_ = made;
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  // Detach anything a failed test left mounted below, deepest first, then remove the tree.
  auto points = MountPointsUnder(path_);
  for (auto it = points.rbegin(); it != points.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  (void)RemoveTree(path_);
}

EmberEnv::EmberEnv() {
  data_dir_ = tmp_.path() + "/data";
  run_dir_ = tmp_.path() + "/run";
  cgroup_name_ = "ember-test-" + tmp_.path().substr(tmp_.path().rfind('-') + 1);
}

EmberEnv::~EmberEnv() {
  for (const auto& dir : CgroupDirs(cgroup_name_)) RemoveCgroupTree(dir);
}

RunResult EmberEnv::Ember(const std::vector<std::string>& args, const std::string& input,
                          int timeout_s, const std::map<std::string, std::string>& env) const {
  std::vector<std::string> argv = {EmberBinary(), "--data-dir", data_dir_, "--run-dir", run_dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto full_env = env;
  full_env.emplace("EMBER_CGROUP_NAME", cgroup_name_);
  // Tests check that nothing stays mounted after a run; lingering mounts are tested explicitly.
  full_env.emplace("EMBER_IMAGE_LINGER", "0");
  return RunCommand(argv, input, timeout_s, full_env);
}

std::string EmberEnv::ImportBusyboxImage(const std::string& name) const {
  std::string rootfs = tmp_.path() + "/rootfs-" + name;
  MakeBusyboxRootfs(rootfs);
  auto r = Ember({"image", "import", rootfs, "--name", name});
  EXPECT_EQ(r.exit_code, 0) << "image import failed: " << r.err;
  (void)RemoveTree(rootfs);
  return name;
}

std::string EmberEnv::ImportPythonImage() const {
  const std::string name = "python3.11";
  const std::string cache = std::string(EMBER_BIN_DIR) + "/../test-cache/" + name;
  const std::string cache_data = cache + "/data";
  EXPECT_TRUE(MakeDirs(cache + "/run"));
  // One builder at a time; the others wait and then reuse its image.
  auto lock = FileLock::Acquire(cache + ".lock", FileLock::Mode::kExclusive);
  EXPECT_TRUE(lock) << lock.error().ToString();
  const std::string ref = "/refs/" + name + ".json";
  if (!PathExists(cache_data + ref)) {
    auto built = RunCommand({EmberBinary(), "--data-dir", cache_data, "--run-dir", cache + "/run",
                             "image", "build", name},
                            "", 900);
    EXPECT_EQ(built.exit_code, 0) << "build the python3.11 test image: " << built.err;
  }
  auto record = ReadFile(cache_data + ref);
  EXPECT_TRUE(record) << "python3.11 test image: " << record.error().ToString();
  if (!record) return name;
  auto json = nlohmann::json::parse(*record, nullptr, /*allow_exceptions=*/false);
  std::string digest = json.is_object() ? json.value("digest", "") : "";
  EXPECT_FALSE(digest.empty()) << "no digest in " << cache_data + ref;
  EXPECT_TRUE(MakeDirs(data_dir_ + "/images"));
  EXPECT_TRUE(MakeDirs(data_dir_ + "/refs"));
  std::string blob = "/images/" + digest + ".erofs";
  EXPECT_EQ(::link((cache_data + blob).c_str(), (data_dir_ + blob).c_str()), 0)
      << "link " << cache_data + blob << ": " << std::strerror(errno);
  EXPECT_TRUE(WriteFileAtomic(data_dir_ + ref, *record));
  return name;
}

std::string EmberEnv::Leaks() const {
  std::string leaks;
  for (const auto& m : MountPointsUnder(tmp_.path())) leaks += "mount " + m + "; ";
  std::vector<std::string> procs;
  for (const auto& dir : CgroupDirs(cgroup_name_)) CollectProcs(dir, &procs);
  for (const auto& p : procs) leaks += "processes in " + p + "; ";
  return leaks;
}

void BusyboxSandboxTest::SetUp() {
  EMBER_REQUIRE_PRIVILEGES();
  env_.emplace();
  env_->ImportBusyboxImage("busybox");
}

void BusyboxSandboxTest::TearDown() {
  if (env_) {
    EXPECT_EQ(env_->Leaks(), "");
  }
}

RunResult BusyboxSandboxTest::Run(std::vector<std::string> args, const std::string& input,
                                  int timeout_s) {
  std::vector<std::string> full = {"run", "--image", "busybox"};
  full.insert(full.end(), args.begin(), args.end());
  return env_->Ember(full, input, timeout_s);
}

void MakeBusyboxRootfs(const std::string& dir) {
  ASSERT_TRUE(MakeDirs(dir + "/bin"));
  for (const char* d : {"/etc", "/tmp", "/proc", "/dev", "/root", "/usr/bin", "/home/user"}) {
    ASSERT_TRUE(MakeDirs(dir + d));
  }
  ::chmod((dir + "/tmp").c_str(), 01777);
  auto copied = RunCommand({"cp", "/bin/busybox", dir + "/bin/busybox"});
  ASSERT_EQ(copied.exit_code, 0) << "copy busybox (package busybox-static): " << copied.err;
  for (const char* applet :
       {"sh",    "ls",       "cat",   "echo",  "id",   "hostname", "mount", "umount", "dd",
        "sleep", "true",     "false", "head",  "tail", "wc",       "touch", "mkdir",  "rm",
        "ps",    "grep",     "env",   "pwd",   "stat", "df",       "yes",   "kill",   "printf",
        "test",  "readlink", "seq",   "chmod", "tr",   "sed",      "awk",   "find"}) {
    ::symlink("busybox", (dir + "/bin/" + applet).c_str());
  }
  ASSERT_TRUE(WriteFileAtomic(dir + "/etc/passwd",
                              "root:x:0:0:root:/root:/bin/sh\n"
                              "user:x:1000:1000:user:/home/user:/bin/sh\n"
                              "nobody:x:65534:65534:nobody:/:/bin/false\n"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/etc/group", "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"));
  ::chown((dir + "/home/user").c_str(), 1000, 1000);
  auto probes = ListDirectory(TestBinDir());
  if (probes) {
    for (const auto& p : *probes) {
      auto r = RunCommand({"cp", TestBinDir() + "/" + p, dir + "/bin/" + p});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
}

RunResult RunCommand(const std::vector<std::string>& argv, const std::string& input, int timeout_s,
                     const std::map<std::string, std::string>& env) {
  RunResult result;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (env.count(key) == 0) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::setpgid(0, 0);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::signal(SIGPIPE, SIG_IGN);
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (timed_out) result.err += "\n[test harness: killed after " + std::to_string(timeout_s) + "s]";
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace ember::testing
