// The restore tests' harness: checkpoints a zdtm program into an image file (then kills it), and
// plays the sandbox for ember-restore: a fresh pid and mount namespace whose pid 1 gets the fds
// of the contract (0-2 stdio, 3 control channel, 4 plan, 5 image, 6 report) and execs it.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "base/unique_fd.h"
#include "integration/zdtm_program.h"
#include "snapshot/image_reader.h"
#include "snapshot/image_writer.h"
#include "snapshot/restore_plan.h"
#include "snapshot/shell_handoff.h"
#include "sys/fd_passing.h"

namespace ember::snapshot::zdtm {

inline std::string RestorerBinary() { return std::string(EMBER_BIN_DIR) + "/ember-restore"; }

// Runs `argv`, checkpoints it once it is ready, writes the image to `image_path` and kills it.
// Returns the program's "ready" line values through `program` (still usable for Get/Num).
inline void CheckpointToImage(Program& program, const std::vector<std::string>& argv,
                              const std::string& image_path) {
  ASSERT_NO_FATAL_FAILURE(program.Start(argv));
  CheckpointOptions options;
  options.control_fd = 0;
  options.leave_stopped = true;
  auto state = Checkpoint(program.pid(), options);
  ASSERT_TRUE(state) << state.error().ToString();
  auto written = WriteImage(*state, image_path);
  ASSERT_TRUE(written) << written.error().ToString();
  ::kill(program.pid(), SIGKILL);  // reaped when `program` goes
}

// A zdtm program started as pid 1 of its own pid namespace, as an instance's agent is: its
// recorded pid is 1 and its threads' tids are small, so ember-restore becomes the process
// instead of cloning it under a reaper. fd 0 a socket to the test, 1 and 2 a pipe.
class Pid1Program {
 public:
  void Start(const std::vector<std::string>& argv) {
    int sv[2], out[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    clone_args clone{};
    clone.flags = CLONE_NEWPID;
    clone.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &clone, sizeof clone);
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
      ::dup2(sv[1], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::syscall(SYS_close_range, 3, ~0U, 0);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(sv[1]);
    ::close(out[1]);
    control_.reset(sv[0]);
    out_.reset(out[0]);
    auto child = ChildProcess::Adopt(static_cast<pid_t>(pid));
    ASSERT_TRUE(child) << child.error().ToString();
    child_ = std::move(*child);
    std::string line;
    char c;
    while (::read(out_.get(), &c, 1) == 1 && c != '\n') line += c;
    ASSERT_TRUE(line.starts_with("ready")) << line;
    std::string path = "/proc/" + std::to_string(pid) + "/syscall";
    for (int i = 0; i < 5000; ++i) {
      auto text = ReadFile(path);
      ASSERT_TRUE(text) << text.error().ToString();
      if (text->starts_with("0 ")) return;
      ::usleep(1000);
    }
    FAIL() << "the program never blocked in read()";
  }
  pid_t host_pid() const { return child_.pid(); }

 private:
  ChildProcess child_;
  UniqueFd control_, out_;
};

inline void CheckpointPid1ToImage(Pid1Program& program, const std::vector<std::string>& argv,
                                  const std::string& image_path) {
  ASSERT_NO_FATAL_FAILURE(program.Start(argv));
  CheckpointOptions options;
  options.control_fd = 0;
  options.leave_stopped = true;
  auto state = Checkpoint(program.host_pid(), options);
  ASSERT_TRUE(state) << state.error().ToString();
  ASSERT_EQ(state->pid, 1);
  auto written = WriteImage(*state, image_path);
  ASSERT_TRUE(written) << written.error().ToString();
  ::kill(program.host_pid(), SIGKILL);  // reaped when `program` goes
}

// One restored instance: pid 1 of its own pid namespace (ember-restore, the reaper, when the
// recorded pid is not 1), its control channel, its stdout, the restorer's report.
class RestoredInstance {
 public:
  // `parked`: as a restore shell (snapshot/shell_handoff.h): ember-restore gets "--parked" and a
  // socket on fd 4, and waits there until HandOff sends it the plan, the image and the report.
  void Start(const std::string& image_path, const RestoreSettings& settings, bool parked = false) {
    auto image = ImageReader::Open(image_path);
    ASSERT_TRUE(image) << image.error().ToString();
    auto plan = BuildRestorePlan(*image, settings);
    ASSERT_TRUE(plan) << plan.error().ToString();
    auto plan_fd = PlanMemfd(*plan);
    ASSERT_TRUE(plan_fd) << plan_fd.error().ToString();
    UniqueFd image_fd(::open(image_path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(image_fd);
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int sv[2], out[2], report[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    control_.reset(sv[0]);
    out_.reset(out[0]);
    report_.reset(report[0]);
    UniqueFd control_child(sv[1]), out_child(out[1]), report_child(report[1]);
    UniqueFd handoff_child;
    if (parked) {
      int handoff[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, handoff), 0);
      handoff_.reset(handoff[0]);
      handoff_child.reset(handoff[1]);
    }
    std::string binary = RestorerBinary();
    // clone3 instead of unshare + fork: the child is pid 1 of the new namespace at once, and
    // killing it (ChildProcess) ends the whole namespace. Its own uts namespace: a parked
    // restorer sets the instance's hostname.
    clone_args args{};
    args.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS;
    args.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    ASSERT_GE(pid, 0) << "clone3: " << std::strerror(errno);
    if (pid == 0) {
      int from[7] = {null.get(),     out_child.get(), out_child.get(),   control_child.get(),
                     plan_fd->get(), image_fd.get(),  report_child.get()};
      if (parked) from[4] = handoff_child.get();
      int high[7];
      for (int i = 0; i < 7; ++i) high[i] = ::fcntl(from[i], F_DUPFD, 100);
      for (int i = 0; i < (parked ? 5 : 7); ++i) ::dup2(high[i], i);
      ::syscall(SYS_close_range, parked ? 5 : 7, ~0U, 0);
      char* argv[] = {const_cast<char*>("ember-restore"),
                      parked ? const_cast<char*>(kParkedFlag) : nullptr, nullptr};
      char* envp[] = {nullptr};
      ::execve(binary.c_str(), argv, envp);
      ::_exit(127);
    }
    auto child = ChildProcess::Adopt(static_cast<pid_t>(pid));
    ASSERT_TRUE(child) << child.error().ToString();
    pid1_ = std::move(*child);
    if (parked) {
      parked_plan_ = std::move(*plan_fd);
      parked_image_ = std::move(image_fd);
      parked_report_ = std::move(report_child);
    }
  }

  // A parked restorer's handoff: `handoff` as given (tests also send malformed ones) with the
  // plan, image and report fds (`fd_count` of them).
  ssize_t HandOff(const ShellHandoff& handoff, size_t fd_count = kShellHandoffFds) {
    int fds[3] = {parked_plan_.get(), parked_image_.get(), parked_report_.get()};
    ssize_t sent = sys::SendWithFds(handoff_.get(), &handoff, sizeof handoff, fds, fd_count);
    parked_report_.reset();  // the restorer's copy is the only writer left
    return sent;
  }
  void CloseHandoff() { handoff_.reset(); }

  // The hostname the restored program sees: uname() in a child that joined its uts namespace.
  std::string Hostname() const {
    UniqueFd uts(
        ::open(("/proc/" + std::to_string(pid1_.pid()) + "/ns/uts").c_str(), O_RDONLY | O_CLOEXEC));
    int pipe_fds[2];
    if (!uts || ::pipe2(pipe_fds, O_CLOEXEC) != 0) return "cannot open the uts namespace";
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    pid_t child = ::fork();
    if (child == 0) {
      struct utsname name {};
      if (::setns(uts.get(), CLONE_NEWUTS) != 0 || ::uname(&name) != 0) ::_exit(1);
      (void)!::write(write_end.get(), name.nodename, std::strlen(name.nodename));
      ::_exit(0);
    }
    write_end.reset();
    std::string name;
    char buf[128];
    ssize_t n;
    while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0) name.append(buf, n);
    ::waitpid(child, nullptr, 0);
    return name;
  }

  // poll() on the report channel for `timeout`: 1 when something (a report or EOF) is there.
  int WaitForReport(std::chrono::milliseconds timeout) {
    pollfd p{report_.get(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count()));
  }

  // The restorer's one record (success or the failing stage); fails the test on a timeout.
  RestoreReport ReadReport() {
    RestoreReport report{};
    pollfd p{report_.get(), POLLIN, 0};
    if (::poll(&p, 1, 30000) != 1) {
      ADD_FAILURE() << "no report from ember-restore within 30 s";
      return report;
    }
    ssize_t n = ::read(report_.get(), &report, sizeof report);
    if (n != static_cast<ssize_t>(sizeof report)) {
      ADD_FAILURE() << "report of " << n << " bytes (the restorer exited without one?)";
      report.magic = 0;
    }
    return report;
  }

  // Wakes the restored program; returns its verdict line ("ok" or "fail ...").
  std::string Finish() {
    char byte = 'x';
    if (::write(control_.get(), &byte, 1) != 1) return "write failed";
    std::string line;
    char c;
    pollfd p{out_.get(), POLLIN, 0};
    while (::poll(&p, 1, 30000) == 1 && ::read(out_.get(), &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

  // pid 1's exit status once the restored program exited.
  std::string Wait() {
    auto status = pid1_.Wait();
    if (!status) return status.error().ToString();
    return status->Describe();
  }

  pid_t pid1() const { return pid1_.pid(); }

  // The host pid of the child of pid 1 that has `recorded` as its pid in the namespace (pid 1
  // may also have the lazy-file reconnector as a child); "" if there is none.
  std::string HostPidOf(pid_t recorded) const {
    std::string p1 = std::to_string(pid1_.pid());
    auto children = ReadFile("/proc/" + p1 + "/task/" + p1 + "/children");
    if (!children) return "";
    std::istringstream words(*children);
    std::string child;
    while (words >> child) {
      auto status = ReadFile("/proc/" + child + "/status");
      if (!status) continue;
      size_t at = status->find("NSpid:");
      if (at == std::string::npos) continue;
      std::string line = status->substr(at, status->find('\n', at) - at);
      if (line.substr(line.rfind('\t') + 1) == std::to_string(recorded)) return child;
    }
    return "";
  }

  int ExitCode() {
    auto status = pid1_.Wait();
    return status ? status->ShellCode() : -1;
  }

 private:
  ChildProcess pid1_;
  UniqueFd control_, out_, report_;
  UniqueFd handoff_, parked_plan_, parked_image_, parked_report_;
};

// Restores `image_path` and checks the program says "ok" and exits 0.
inline void RestoreAndExpectOk(const std::string& image_path, const RestoreSettings& settings) {
  RestoredInstance instance;
  ASSERT_NO_FATAL_FAILURE(instance.Start(image_path, settings));
  RestoreReport report = instance.ReadReport();
  auto status = CheckRestoreReport(report);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_GT(report.phase_ns[kPhaseTotal], 0u);
  // For a reader of the XML output, not asserted (tests check behaviour, not speed).
  ::testing::Test::RecordProperty("restore_total_us",
                                  std::to_string(report.phase_ns[kPhaseTotal] / 1000));
  ::testing::Test::RecordProperty("restore_memory_us",
                                  std::to_string(report.phase_ns[kPhaseMemory] / 1000));
  EXPECT_EQ(instance.Finish(), "ok");
  EXPECT_EQ(instance.ExitCode(), 0);
}

}  // namespace ember::snapshot::zdtm
