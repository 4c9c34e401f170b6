#include "sandbox/child.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/capabilities.h"
#include "sys/fd_passing.h"
#include "sys/syscalls.h"

namespace ember::sandbox {

const char* ChildStageName(ChildStage stage) {
  switch (stage) {
    case ChildStage::kWaitParent:
      return "wait for parent";
    case ChildStage::kSetIds:
      return "become root of the user namespace";
    case ChildStage::kUnshareCgroup:
      return "unshare cgroup namespace";
    case ChildStage::kMountPrivate:
      return "make mounts private";
    case ChildStage::kMount:
      return "mount";
    case ChildStage::kSendLayer:
      return "send writable layer to parent";
    case ChildStage::kStdio:
      return "set up stdin/stdout/stderr";
    case ChildStage::kPivotRoot:
      return "pivot_root";
    case ChildStage::kHostname:
      return "sethostname";
    case ChildStage::kLoopback:
      return "bring up loopback";
    case ChildStage::kRlimit:
      return "setrlimit";
    case ChildStage::kWorkdir:
      return "chdir to workdir";
    case ChildStage::kCapabilities:
      return "switch user and drop capabilities";
    case ChildStage::kSeccomp:
      return "install seccomp filter";
    case ChildStage::kExec:
      return "exec";
    case ChildStage::kJoinCgroup:
      return "join the instance's cgroup";
    case ChildStage::kJoinNetwork:
      return "join the pooled network namespace";
    case ChildStage::kUnshareNetwork:
      return "unshare network namespace";
  }
  return "unknown stage";
}

namespace {

std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& kv : env) {
    if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
  }
  return "";
}

}  // namespace

ChildPlan BuildChildPlan(const SandboxSpec& spec, const std::string& staging,
                         const BpfProgram* seccomp, int cap_last_cap,
                         const std::array<int, kInheritedFds>& inherited) {
  ChildPlan plan;
  plan.mounts = BuildMountPlan(spec, staging);
  plan.hostname = spec.hostname.empty() ? spec.id : spec.hostname;
  // The restorer switches to the sandbox's user itself, after the steps that need root.
  plan.uid = spec.restorer ? 0 : spec.uid;
  plan.gid = spec.restorer ? 0 : spec.gid;
  plan.loopback_up = spec.network == NetworkMode::kLoopback;
  plan.rlimits = spec.rlimits;
  plan.workdir = spec.workdir.empty() ? "/" : spec.workdir;
  plan.seccomp = seccomp;
  plan.cap_last_cap = cap_last_cap;
  plan.keep_caps = spec.fork_template ? TemplateCapabilities()
                   : spec.restorer    ? RestorerCapabilities()
                                      : 0;
  for (int i = 0; i < kInheritedFds; ++i) plan.inherited[i] = inherited[i];

  const std::string& command = spec.argv.at(0);
  if (command.find('/') != std::string::npos) {
    plan.exec_candidates.push_back(command);
  } else {
    std::string path = EnvValue(spec.env, "PATH");
    if (path.empty()) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find(':', start);
      if (end == std::string::npos) end = path.size();
      std::string dir = path.substr(start, end - start);
      plan.exec_candidates.push_back((dir.empty() ? "." : dir) + "/" + command);
      start = end + 1;
    }
  }
  plan.argv_storage = spec.argv;
  plan.envp_storage = spec.env;
  for (auto& a : plan.argv_storage) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : plan.envp_storage) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  return plan;
}

namespace {

// Sends an fd of the writable layer's tmpfs to the parent, so it can tell (fstatfs) whether the
// layer filled up after the sandbox is gone.
int SendLayerFd(int sync_fd, const char* staging) noexcept {
  int layer = ::open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (layer < 0) return errno;
  ChildReport hello{ChildStage::kSendLayer, 0, 0};
  int err = sys::SendWithFds(sync_fd, &hello, sizeof hello, &layer, 1) < 0 ? errno : 0;
  ::close(layer);
  return err;
}

// Makes the plan's inherited fds the process's 0, 1, 2 (and 3..6 where given). Sources are
// first moved above 6 so that one dup2 cannot clobber another's source; dup2 clears
// close-on-exec on the targets.
int InstallInheritedFds(const int inherited[kInheritedFds]) noexcept {
  int moved[kInheritedFds];
  for (int i = 0; i < kInheritedFds; ++i) {
    moved[i] = inherited[i] < 0 || inherited[i] == i
                   ? inherited[i]
                   : ::fcntl(inherited[i], F_DUPFD_CLOEXEC, kInheritedFds);
    if (inherited[i] >= 0 && moved[i] < 0) return errno;
  }
  for (int i = 0; i < kInheritedFds; ++i) {
    if (moved[i] < 0) continue;
    if (moved[i] != i && ::dup2(moved[i], i) < 0) return errno;
    // An fd already in place still has the parent's close-on-exec flag.
    if (moved[i] == i && ::fcntl(i, F_SETFD, 0) < 0) return errno;
  }
  // The temporaries would survive in a fork-boot child, which does not exec.
  for (int i = 0; i < kInheritedFds; ++i) {
    if (moved[i] >= 0 && moved[i] != i) ::close(moved[i]);
  }
  return 0;
}

}  // namespace

int BringUpLoopback() noexcept {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return errno;
  struct ifreq ifr = {};
  std::memcpy(ifr.ifr_name, "lo", 3);
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  int err = ::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0 ? errno : 0;
  ::close(sock);
  return err;
}

bool ChildFailed(ChildReport* report, ChildStage stage, int err, uint32_t step) noexcept {
  report->stage = stage;
  report->error = err;
  report->step = step;
  return false;
}

bool EnterSandbox(const ChildPlan& plan, int sync_fd, ChildReport* report) noexcept {
  // Meanwhile the parent writes our id maps and puts us in our cgroup. The capabilities this
  // takes are ours from clone on, in the user namespace clone made, which owns the new one.
  if (plan.unshare_network && ::unshare(CLONE_NEWNET) != 0) {
    return ChildFailed(report, ChildStage::kUnshareNetwork, errno);
  }
  // Then the parent sends one byte. EOF means it gave up (or died): exit quietly.
  char go = 0;
  ssize_t n;
  do {
    n = ::read(sync_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return ChildFailed(report, ChildStage::kWaitParent, n == 0 ? EPIPE : errno);

  // Until now we kept the host credentials (unmapped here); become the namespace's root so that
  // files we create belong to it.
  // Raw syscalls: glibc's wrappers broadcast the change to every thread it believes exists
  // (setxid), and this child of a multi-threaded daemon has only a stale copy of that list; a
  // thread that was starting or exiting at clone time makes the broadcast wait forever.
  if (::syscall(SYS_setresgid, 0, 0, 0) != 0 || ::syscall(SYS_setresuid, 0, 0, 0) != 0) {
    return ChildFailed(report, ChildStage::kSetIds, errno);
  }
  if (::syscall(SYS_setgroups, 0, nullptr) != 0)
    return ChildFailed(report, ChildStage::kSetIds, errno);
  // Only now, inside our cgroup, so that the cgroup namespace is rooted there.
  if (::unshare(CLONE_NEWCGROUP) != 0)
    return ChildFailed(report, ChildStage::kUnshareCgroup, errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ChildFailed(report, ChildStage::kMountPrivate, errno);
  }
  return FinishSandbox(plan, sync_fd, report);
}

bool PivotIntoAndDetach(const char* root) noexcept {
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only
  // the new tree, with no path back to the old one.
  return ::chdir(root) == 0 && sys::PivotRoot(".", ".") == 0 && ::umount2(".", MNT_DETACH) == 0 &&
         ::chdir("/") == 0;
}

bool FinishSandbox(const ChildPlan& plan, int layer_sink, ChildReport* report) noexcept {
  size_t failed_step = 0;
  if (int err = ApplyMountPlan(plan.mounts, &failed_step); err != 0) {
    return ChildFailed(report, ChildStage::kMount, err, static_cast<uint32_t>(failed_step));
  }
  if (layer_sink >= 0) {
    if (int err = SendLayerFd(layer_sink, plan.mounts.staging.c_str()); err != 0) {
      return ChildFailed(report, ChildStage::kSendLayer, err);
    }
  }
  if (plan.pivot_root && !PivotIntoAndDetach(plan.mounts.root.c_str())) {
    return ChildFailed(report, ChildStage::kPivotRoot, errno);
  }
  if (::sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
    return ChildFailed(report, ChildStage::kHostname, errno);
  }
  if (plan.loopback_up) {
    if (int err = BringUpLoopback(); err != 0)
      return ChildFailed(report, ChildStage::kLoopback, err);
  }
  // Before the rlimits: moving the inherited fds into place takes free fd numbers, which in a
  // daemon holding thousands of fds are above the sandbox's RLIMIT_NOFILE.
  if (int err = InstallInheritedFds(plan.inherited); err != 0) {
    return ChildFailed(report, ChildStage::kStdio, err);
  }
  for (size_t i = 0; i < plan.rlimits.size(); ++i) {
    struct rlimit limit = {plan.rlimits[i].soft, plan.rlimits[i].hard};
    if (::setrlimit(plan.rlimits[i].resource, &limit) != 0) {
      return ChildFailed(report, ChildStage::kRlimit, errno, static_cast<uint32_t>(i));
    }
  }
  IdSwitch ids{plan.uid, plan.gid, /*clear_groups=*/false};
  if (int err = DropAllCapabilities(plan.cap_last_cap, &ids, plan.keep_caps, plan.bounding);
      err != 0) {
    return ChildFailed(report, ChildStage::kCapabilities, err);
  }
  // As the sandbox's user, so that permissions are checked as that user.
  if (::chdir(plan.workdir.c_str()) != 0) return ChildFailed(report, ChildStage::kWorkdir, errno);
  // The parent-death signal is cleared by credential changes, so it is set after the last one.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (plan.seccomp != nullptr) {
    if (int err = InstallSeccomp(*plan.seccomp); err != 0) {
      return ChildFailed(report, ChildStage::kSeccomp, err);
    }
  }
  return true;
}

void RunSandboxChild(const ChildPlan& plan, int sync_fd) noexcept {
  ChildReport report{};
  // The sync socket must survive the installation of fds 0..6 (a low number would be replaced).
  if (sync_fd < kInheritedFds) {
    int moved = ::fcntl(sync_fd, F_DUPFD_CLOEXEC, kInheritedFds);
    if (moved < 0) ::_exit(125);
    sync_fd = moved;
  }
  if (EnterSandbox(plan, sync_fd, &report)) {
    // Whatever else the parent had open (a daemon's client connections: Boost.Asio accepts
    // without SOCK_CLOEXEC; fds its own parent leaked to it) must not reach the sandbox: every
    // fd that is not one of the plan's. Marked close-on-exec rather than closed, so that the
    // sync socket can still report a failed exec.
    int err = 0;
    for (int fd = 3; fd < kInheritedFds && err == 0; ++fd) {
      if (plan.inherited[fd] < 0 && ::syscall(SYS_close_range, fd, fd, CLOSE_RANGE_CLOEXEC) != 0) {
        err = errno;
      }
    }
    if (err == 0 && ::syscall(SYS_close_range, kInheritedFds, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      err = errno;
    }
    if (err != 0) {
      report = {ChildStage::kStdio, err, 0};
      (void)!::send(sync_fd, &report, sizeof report, MSG_NOSIGNAL);
      ::_exit(125);
    }
    // A parent killed before FinishSandbox armed the parent-death signal would leave this
    // sandbox running with nobody to stop it. The parent holds its end of the sync socket until
    // the exec, so a hung-up socket means it is gone.
    struct pollfd parent = {sync_fd, POLLRDHUP, 0};
    if (::poll(&parent, 1, 0) > 0 && (parent.revents & (POLLHUP | POLLRDHUP)) != 0) ::_exit(125);
    // The parent blocks the signals it forwards; a blocked mask would survive the exec.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Like execvp: remember EACCES from a candidate, but keep looking after ENOENT.
    err = ENOENT;
    for (const auto& candidate : plan.exec_candidates) {
      ::execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
      if (errno != ENOENT && errno != ENOTDIR) err = errno;
    }
    report = {ChildStage::kExec, err, 0};
  }
  (void)!::send(sync_fd, &report, sizeof report, MSG_NOSIGNAL);
  ::_exit(125);
}

}  // namespace ember::sandbox
