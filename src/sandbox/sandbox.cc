#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "base/fs.h"
#include "base/units.h"
#include "sandbox/capabilities.h"
#include "sandbox/child.h"
#include "sys/fd_passing.h"
#include "sys/syscalls.h"

namespace ember::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

int CapLastCap() {
  static const int value = [] {
    auto last = ReadCapLastCap();
    return last ? *last : 40;
  }();
  return value;
}

// Receives one ChildReport, with the fd passed alongside it if any. Returns 0 bytes on EOF.
Result<ssize_t> ReceiveReport(int sock, ChildReport* report, UniqueFd* passed_fd) {
  int fd = -1;
  size_t fd_count = 0;
  bool truncated = false;
  ssize_t n = sys::ReceiveWithFds(sock, report, sizeof *report, &fd, 1, &fd_count, &truncated);
  if (n < 0) return FailErrno("read sandbox setup report");
  if (fd_count == 1) passed_fd->reset(fd);
  if (n != 0 && n != static_cast<ssize_t>(sizeof *report)) {
    return Fail(ErrorCode::kInternal, "short sandbox setup report");
  }
  return n;
}

// Turns a child's failure report into an error that names the step and the object.
Error ReportToError(const ChildReport& report, const ChildPlan& plan) {
  std::string what = ChildStageName(report.stage);
  if (report.stage == ChildStage::kMount && report.step < plan.mounts.steps.size()) {
    const MountStep& step = plan.mounts.steps[report.step];
    const bool bind = step.op == MountOp::kBindReadOnly ||
                      (step.op == MountOp::kMount && (step.flags & MS_BIND) != 0);
    what = bind                  ? "bind " + step.source + " on " + step.target
           : step.fstype.empty() ? "prepare " + step.target
                                 : "mount " + step.fstype + " on " + step.target;
    if (step.fstype == "overlay") what += " (" + step.data + ")";
  } else if (report.stage == ChildStage::kExec) {
    std::string reason = report.error == ENOENT   ? "command not found in the image"
                         : report.error == EACCES ? "not executable"
                                                  : "cannot execute";
    return Error(ErrorCode::kExecFailed, "exec " + plan.argv_storage.at(0) + ": " + reason,
                 report.error);
  } else if (report.stage == ChildStage::kWorkdir) {
    what = "chdir to workdir " + plan.workdir;
  }
  return Error::Errno(what, report.error);
}

// What the parent does to a new child before releasing it: its id maps, its cgroup (unless the
// kernel placed it there at clone) and, when asked, the cgroup's limits.
Status PrepareChild(pid_t pid, const SandboxSpec& spec, cgroup::Lease& cgroup, bool attach,
                    bool apply_limits) {
  EMBER_TRY(WriteIdMaps(pid, spec.ids));
  if (attach) EMBER_TRY(cgroup.Attach(pid));
  if (apply_limits) EMBER_TRY_CTX(cgroup.Apply(spec.limits), "apply limits");
  return Ok();
}

// The failure a child has already reported, if any (without waiting).
std::optional<Error> PendingFailure(int sock, const ChildPlan& plan) {
  struct pollfd ready = {sock, POLLIN, 0};
  if (::poll(&ready, 1, 0) != 1 || (ready.revents & POLLIN) == 0) return std::nullopt;
  ChildReport report{};
  UniqueFd passed;
  auto n = ReceiveReport(sock, &report, &passed);
  if (!n || *n == 0 || report.stage == ChildStage::kSendLayer) return std::nullopt;
  return ReportToError(report, plan);
}

}  // namespace

std::string NewSandboxId() {
  // RandomHex: getrandom, not std::random_device (whose set-up runs cpuid, a VM exit here).
  std::string id = "sb-";
  id.append(RandomHex(), 0, 12);
  return id;
}

Status WriteIdMaps(pid_t pid, const IdRange& ids) {
  std::string map = "0 " + std::to_string(ids.host_base) + " " + std::to_string(ids.count);
  std::string proc = "/proc/" + std::to_string(pid);
  EMBER_TRY_CTX(WriteControlFile(proc + "/uid_map", map), "map sandbox uids");
  EMBER_TRY_CTX(WriteControlFile(proc + "/gid_map", map), "map sandbox gids");
  return Ok();
}

Result<Sandbox> Sandbox::Start(const SandboxSpec& spec, cgroup::Lease cgroup,
                               const StartOptions& options) {
  EMBER_ASSIGN_OR_RETURN(auto launched, Launch(spec, options, cgroup.v2_dir_fd()));
  return std::move(launched).Release(std::move(cgroup));
}

Result<LaunchedSandbox> Sandbox::Launch(const SandboxSpec& spec, const StartOptions& options,
                                        int clone_into_cgroup) {
  LaunchedSandbox launched;
  launched.start_ = Clock::now();
  EMBER_TRY(Validate(spec));
  const std::array<int, kInheritedFds> inherited = {
      options.stdio[0],       options.stdio[1],       options.stdio[2],      options.control_fd,
      options.restore_fds[0], options.restore_fds[1], options.restore_fds[2]};
  launched.plan_ =
      BuildChildPlan(spec, options.staging_dir, options.seccomp, CapLastCap(), inherited);
  launched.plan_.unshare_network = true;
  launched.timings_.plan = Since(launched.start_);

  int socks[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) != 0) {
    return FailErrno("socketpair for sandbox " + spec.id);
  }
  UniqueFd parent_sock(socks[0]), child_sock(socks[1]);

  auto clone_start = Clock::now();
  int pidfd = -1;
  struct clone_args args {};
  // No CLONE_NEWNET: the child unshares its network namespace itself (ChildPlan).
  args.flags =
      CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (clone_into_cgroup >= 0) {
    // v2: the kernel places the child in its cgroup atomically with its creation.
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(clone_into_cgroup);
  }
  long pid = sys::Clone3(&args);
  if (pid < 0) return FailErrno("clone3 sandbox " + spec.id + " into new namespaces");
  if (pid == 0) {
    parent_sock.reset();
    RunSandboxChild(launched.plan_, child_sock.get());
  }
  child_sock.reset();
  launched.init_ = ChildProcess(static_cast<pid_t>(pid), UniqueFd(pidfd));
  launched.timings_.clone = Since(clone_start);
  launched.spec_ = spec;
  launched.apply_limits_ = options.apply_limits;
  launched.in_cgroup_ = clone_into_cgroup >= 0;
  launched.sock_ = std::move(parent_sock);
  return launched;
}

Result<Sandbox> LaunchedSandbox::Release(cgroup::Lease cgroup) && {
  const std::string context = "start sandbox " + spec_.id;
  // While the child sets up its network namespace, if it is still at it.
  auto map_start = Clock::now();
  Status prepared = PrepareChild(init_.pid(), spec_, cgroup, !in_cgroup_, apply_limits_);
  const char go = 1;
  if (prepared && ::write(sock_.get(), &go, 1) != 1) prepared = FailErrno("release child");
  if (!prepared) {
    // A child that failed on its own (unsharing its network namespace) is gone, which is what
    // the step above ran into; its report names the cause.
    if (auto early = PendingFailure(sock_.get(), plan_)) return Fail(early->Context(context));
    return Fail(std::move(prepared).error().Context(context));
  }
  timings_.id_map_and_cgroup = Since(map_start);

  // The child first passes an fd of its writable layer, then either execs (EOF on the
  // socket, which is close-on-exec) or reports the step that failed.
  auto setup_start = Clock::now();
  UniqueFd layer;
  for (;;) {
    ChildReport report{};
    UniqueFd passed;
    EMBER_ASSIGN_OR_RETURN(ssize_t n, ReceiveReport(sock_.get(), &report, &passed));
    if (n == 0) break;
    if (report.stage == ChildStage::kSendLayer && report.error == 0) {
      layer = std::move(passed);
      continue;
    }
    return Fail(ReportToError(report, plan_).Context(context));
  }
  timings_.child_setup = Since(setup_start);
  timings_.total = Since(start_);
  Sandbox sandbox(spec_.id, std::move(init_), std::move(cgroup), std::move(layer));
  sandbox.timings_ = timings_;
  return sandbox;
}

Sandbox Sandbox::Adopted(std::string id, pid_t host_pid, cgroup::Lease cgroup) {
  Sandbox sandbox(std::move(id), ChildProcess(), std::move(cgroup), UniqueFd());
  sandbox.adopted_pid_ = host_pid;
  return sandbox;
}

Status Sandbox::Signal(int sig) const {
  if (!adopted()) return init_.Signal(sig);
  if (sig != SIGKILL) {
    return Fail(ErrorCode::kInvalidArgument,
                "sandbox " + id_ + " was forked from a template: only SIGKILL can be sent");
  }
  cgroup_.KillAll();
  return Ok();
}

Result<ExitStatus> Sandbox::Wait() {
  if (adopted()) {
    return Fail(ErrorCode::kInvalidArgument,
                "sandbox " + id_ + " was forked from a template, which reaps it");
  }
  return init_.Wait();
}

Sandbox::~Sandbox() { (void)Destroy(); }

Result<LayerUsage> Sandbox::WritableLayer() const {
  if (!layer_) return Fail(ErrorCode::kUnavailable, "sandbox " + id_ + " has no writable layer");
  struct statfs st {};
  if (::fstatfs(layer_.get(), &st) != 0) return FailErrno("statfs writable layer of " + id_);
  LayerUsage usage;
  usage.size_bytes = st.f_blocks * st.f_bsize;
  usage.used_bytes = (st.f_blocks - st.f_bfree) * st.f_bsize;
  usage.full = st.f_bavail == 0 || (st.f_files > 0 && st.f_ffree == 0);
  return usage;
}

Status Sandbox::Destroy() {
  // Killing pid 1 of the namespace makes the kernel kill every other process in it; the mount
  // namespace, and with it the overlay and tmpfs, goes away with the last of them.
  init_.KillAndReap();
  layer_.reset();
  return cgroup_.Release();
}

}  // namespace ember::sandbox
