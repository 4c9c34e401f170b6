// How a kernel check runs a risky attempt: in a forked child that reports back over a pipe,
// so whatever the attempt changes (namespaces, mounts, a seccomp filter) dies with the child.
// Internal to src/sys (kernel_checks.cc); not part of the kernel_probe.h interface.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "sys/kernel_probe.h"

namespace ember::sys::kernel_checks {

// What a probe child sends back: an errno (0 = the feature works) and a line of detail.
struct ChildReport {
  int err = ECHILD;
  char detail[240] = "probe child died before reporting";
};

// Runs fn(report) in a forked child, so namespace, mount and seccomp changes die with it. The
// child only formats into a fixed buffer and makes syscalls: no allocation, since a fork of a
// threaded process (the daemon) may copy a malloc lock held by another thread.
template <typename F>
ChildReport RunInChild(F&& fn) {
  ChildReport report;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    report.err = errno;
    std::snprintf(report.detail, sizeof report.detail, "pipe2: %s", strerrorname_np(errno));
    return report;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ChildReport r;
    r.err = 0;
    r.detail[0] = '\0';
    fn(r);
    (void)!::write(fds[1], &r, sizeof r);
    ::_exit(0);
  }
  ::close(fds[1]);
  if (pid < 0) {
    report.err = errno;
    std::snprintf(report.detail, sizeof report.detail, "fork: %s", strerrorname_np(errno));
  } else {
    // A probe that hangs (a mount stuck in the kernel) must not hang ember: 5 s, then SIGKILL.
    struct pollfd pfd {
      fds[0], POLLIN, 0
    };
    int ready;
    do {
      ready = ::poll(&pfd, 1, 5000);
    } while (ready < 0 && errno == EINTR);
    ChildReport got;
    if (ready == 1 && ::read(fds[0], &got, sizeof got) == sizeof got) {
      report = got;
    } else if (ready == 0) {
      ::kill(pid, SIGKILL);
      report.err = ETIMEDOUT;
      std::snprintf(report.detail, sizeof report.detail, "probe child timed out after 5 s");
    }
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(fds[0]);
  return report;
}

// Records a failed step in the child's report; returns false so callers can `return Step(...)`.
inline bool Step(ChildReport& r, bool ok, const char* what) {
  if (ok) return true;
  r.err = errno;
  std::snprintf(r.detail, sizeof r.detail, "%s: %s", what, strerrorname_np(errno));
  return false;
}

// The feature a check's report stands for: ok_detail when it worked, else the child's detail.
inline FeatureResult MakeFeature(std::string_view name, bool required, const ChildReport& r,
                                 std::string ok_detail, std::string fallback) {
  bool ok = r.err == 0;
  return {std::string(name), ok, required, ok ? std::move(ok_detail) : std::string(r.detail),
          ok ? "" : std::move(fallback)};
}

}  // namespace ember::sys::kernel_checks
