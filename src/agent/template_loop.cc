#include "agent/template_loop.h"

#include <dirent.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "agent/agent_loop.h"
#include "agent/log_relay.h"
#include "agent/protocol_template.h"
#include "sandbox/capabilities.h"
#include "sandbox/fork_child.h"
#include "sandbox/fork_rootfs.h"
#include "sandbox/fork_seccomp.h"
#include "sandbox/fork_shell.h"

namespace ember::agent {
namespace {

// How long the template waits, after a spawn, for the next request before it prepares the next
// child's rootfs (fork_rootfs.h); a request that comes first gets one prepared on the spot.
// None: the template builds it while the child it just forked sets itself up (its ~0.3 ms on
// the other CPU, where the daemon only waits for the child's ready). Measured on 2 CPUs under
// load, waiting 1 ms put it beside the invocation's handler instead and made boots slower.
constexpr int kPrepareAfterIdleMs = 0;
// The namespace shell (fork_shell.h) comes later: made at once, its ≈ 1 ms (the namespace copy,
// the pivot) ran beside the daemon reading the spawn reply and the child setting itself up
// (Server-Timing sandbox ≈ 0.2 ms longer). A request that comes first does without one.
constexpr int kShellAfterIdleMs = 3;

// The namespace shell's stack: it runs a dozen syscall wrappers, no library code that recurses.
constexpr size_t kShellStackBytes = size_t{64} * 1024;

void Complain(const std::string& message) {
  std::fprintf(stderr, "ember-agent (template): %s\n", message.c_str());
}

int CountThreads() {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int count = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

// The process's private writable memory (VmData in /proc/self/status, which RLIMIT_DATA
// counts), in bytes; 0 when it cannot be read.
uint64_t DataBytes() {
  FILE* status = std::fopen("/proc/self/status", "re");
  if (status == nullptr) return 0;
  uint64_t kib = 0;
  char line[256];
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::sscanf(line, "VmData: %" SCNu64 " kB", &kib) == 1) break;
  }
  std::fclose(status);
  return kib * 1024;
}

sandbox::SandboxSpec ChildSpec(const TemplateSpec& t) {
  sandbox::SandboxSpec spec;
  spec.tmpfs_size = t.tmpfs_size;
  spec.tmp_size = t.tmp_size;
  spec.uid = t.uid;
  spec.gid = t.gid;
  spec.workdir = t.workdir;
  for (const auto& target : t.binds) spec.binds.push_back({target, target});
  for (const auto& l : t.rlimits) spec.rlimits.push_back({l.resource, l.soft, l.hard});
  return spec;
}

class Template {
 public:
  Template(int fd, Runtime& runtime, TemplateSpec spec)
      : fd_(fd), runtime_(runtime), spec_(std::move(spec)) {
    // Not the strict filter the daemon sent (spec_.seccomp): stacked on the template's own, this
    // small one makes the pair answer as strict does, for a fraction of the install cost.
    seccomp_ = sandbox::TemplateToStrictFilter();
    plan_ = sandbox::BuildForkChildPlan(ChildSpec(spec_), &seccomp_, spec_.cap_last_cap);
    // Its children drop only what it still has (5 prctl calls instead of 41).
    plan_.bounding = sandbox::ReadBoundingSet(spec_.cap_last_cap);
    rootfs_plan_ = sandbox::BuildForkRootfsPlan(ChildSpec(spec_));
    shell_plan_ = sandbox::ForkShellChildPlan(plan_);
    shell_proc_ = sandbox::BuildForkProcPlan(&sandbox::ProcPathExists);
    shell_attach_.staging = plan_.mounts.staging;
    shell_attach_.root = plan_.mounts.root;
    // A template started by an older daemon lacks it, and its children could not join a shell.
    if ((plan_.bounding & (uint64_t{1} << CAP_SYS_CHROOT)) == 0) {
      Complain("no CAP_SYS_CHROOT to join namespaces made ahead; the children get new ones");
      use_shells_ = false;
    }
  }
  TemplateOutcome Run();

 private:
  // Returns true in the child (sandboxed), false in the template.
  bool Spawn(FrameWithFds request, TemplateOutcome* child);
  void ReapChildren();
  // Builds the next child's rootfs unless one is ready. If the kernel cannot (overlayfs takes
  // detached layers by fd since Linux 6.15), says why once and has the children build their
  // rootfs themselves from then on, as before fork_rootfs.h.
  void PrepareRootfs();
  // Then, with the rootfs ready, its namespaces around it (fork_shell.h); if the kernel refuses a
  // step, says why once and has the children cloned into new namespaces from then on. Only while
  // idle (see Spawn).
  void PrepareShell();
  // How long to wait for a request before preparing the next part of the next child (the
  // rootfs, then its shell); -1 when there is nothing left to prepare.
  int IdleTimeoutMs() const {
    if (!prepare_rootfs_ || shell_.ready()) return -1;
    if (!rootfs_.ready()) return kPrepareAfterIdleMs;
    return use_shells_ ? kShellAfterIdleMs : -1;
  }
  std::string DescribeFailure(const sandbox::ChildReport& report, bool shell) const;
  void Send(FrameType type, uint64_t id, const std::string& payload, int fd = -1);
  [[noreturn]] void ChildFails(int control, const std::string& type, const std::string& message);

  int fd_;
  Runtime& runtime_;
  TemplateSpec spec_;
  sandbox::BpfProgram seccomp_;
  sandbox::ChildPlan plan_;
  sandbox::ForkRootfsPlan rootfs_plan_;
  sandbox::PreparedRootfs rootfs_;  // the next child's
  bool prepare_rootfs_ = true;      // false: the children build their own (plan_.mounts)
  sandbox::ChildPlan shell_plan_;   // plan_ for a child that joins a shell
  sandbox::ForkProcPlan shell_proc_;
  sandbox::MountPlan shell_attach_;  // where the shell attaches the rootfs (staging, root)
  sandbox::NamespaceShell shell_;    // the next child's, built around rootfs_
  UniqueFd mask_source_;             // kept: closing a detached mount waits for RCU
  bool use_shells_ = true;
  std::vector<char> shell_stack_ = std::vector<char>(kShellStackBytes);
  int signal_fd_ = -1;
  std::map<pid_t, std::string> children_;
};

void Template::Send(FrameType type, uint64_t id, const std::string& payload, int fd) {
  Status sent = fd >= 0 ? WriteFrameWithFds(fd_, type, id, payload, std::span<const int>(&fd, 1))
                        : WriteFrame(fd_, type, id, payload);
  if (!sent) Complain(sent.error().ToString());
}

TemplateOutcome Template::Run() {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  signal_fd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    Complain(std::string("signalfd: ") + std::strerror(errno));
    return {kExitUnusable, ""};
  }
  for (;;) {
    struct pollfd fds[2] = {{fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, IdleTimeoutMs());
    if (ready < 0) {
      if (errno == EINTR) continue;
      Complain(std::string("poll: ") + std::strerror(errno));
      return {kExitProtocolError, ""};
    }
    if (ready == 0) {
      // The rootfs first, at once; the shell around it on a later timeout.
      if (rootfs_.ready()) {
        PrepareShell();
      } else {
        PrepareRootfs();
      }
      continue;
    }
    if (fds[1].revents != 0) ReapChildren();
    if (fds[0].revents == 0) continue;
    auto request = ReadFrameWithFds(fd_);
    if (!request) {
      if (request.error().code() == ErrorCode::kNotFound) return {kExitClosed, ""};
      Complain("protocol error: " + request.error().ToString());
      return {kExitProtocolError, ""};
    }
    if (request->frame.type != FrameType::kSpawn) {
      Complain(std::string("protocol error: a template serves only spawn frames, got ") +
               FrameTypeName(request->frame.type));
      return {kExitProtocolError, ""};
    }
    TemplateOutcome child;
    if (Spawn(std::move(*request), &child)) return child;
  }
}

bool Template::Spawn(FrameWithFds request, TemplateOutcome* child) {
  uint64_t id = request.frame.request_id;
  auto spawn = DecodeSpawnRequest(request.frame.payload);
  size_t wanted = spawn ? 2 + (spawn->netns ? 1 : 0) + spawn->cgroup_fds : 0;
  if (!spawn || request.fds.size() != wanted) {
    std::string why = spawn ? "expected " + std::to_string(wanted) + " fds, got " +
                                  std::to_string(request.fds.size())
                            : spawn.error().ToString();
    Send(FrameType::kSpawnFailed, id, EncodeError(MakeError("InvalidSpawn", why)));
    return false;
  }
  sandbox::SpawnFds fds;
  fds.control = request.fds[0].get();
  fds.log = request.fds[1].get();
  size_t next = 2;
  if (spawn->netns) fds.netns = request.fds[next++].get();
  for (uint32_t i = 0; i < spawn->cgroup_fds; ++i) fds.cgroup_procs[i] = request.fds[next++].get();
  fds.cgroup_count = spawn->cgroup_fds;
  // A request that finds no shell ready (a burst) is not kept waiting for one: making it blocks
  // the template for the namespace copy, the pivot and the umount's RCU wait. Its child gets new
  // namespaces and the prepared rootfs instead, and pivots itself, as before shells.
  if (!shell_.ready()) PrepareRootfs();
  const bool with_shell = shell_.ready();
  if (with_shell) {
    fds.shell = shell_.fds(mask_source_.get());
    fds.shell_proc = &shell_proc_;
  } else {
    fds.rootfs_layer = rootfs_.layer.get();
    fds.rootfs_root = rootfs_.root.get();
  }

  runtime_.BeforeFork();
  int pidfd = -1;
  // Legacy clone: the template's seccomp filter can check its flags (clone3's are in memory).
  long pid = ::syscall(SYS_clone, sandbox::ForkCloneFlags(with_shell) | CLONE_PIDFD | SIGCHLD,
                       nullptr, &pidfd, nullptr, nullptr);
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::close(signal_fd_);
    sandbox::ChildReport report{};
    if (!sandbox::EnterForkedSandbox(with_shell ? shell_plan_ : plan_, spawn->instance_id, fds,
                                     &report)) {
      ChildFails(fds.control, "SpawnFailed",
                 DescribeFailure(report, with_shell) + ": " + std::strerror(report.error));
    }
    // Attached or joined: the child's own mounts and namespaces now. No fd to its layer (upper
    // and work dirs included) or to a namespace stays open for the function.
    rootfs_ = {};
    shell_ = {};
    if (auto relay = StartLogRelay(); !relay) {
      // Output still reaches the daemon; only a subprocess's may not be placed in its log.
      Complain(relay.error().ToString());
    }
    ::setenv("EMBER_INSTANCE", spawn->instance_id.c_str(), 1);
    if (auto ready = runtime_.AfterForkChild(spawn->instance_id); !ready) {
      ChildFails(3, ready.error().type, ready.error().message);
    }
    child->instance_id = spawn->instance_id;
    return true;  // `request` closes the received originals; fds 0-3 are the child's own
  }
  int clone_errno = errno;
  runtime_.AfterForkParent();
  if (pid < 0) {
    rootfs_ = {};  // a failed clone's tree and shell are dropped
    shell_ = {};
    Send(FrameType::kSpawnFailed, id,
         EncodeError(MakeError("SpawnFailed",
                               std::string("clone the template: ") + std::strerror(clone_errno))));
    return false;
  }
  children_[static_cast<pid_t>(pid)] = spawn->instance_id;
  Send(FrameType::kSpawned, id, EncodeSpawnReply({spawn->instance_id, pid}), pidfd);
  ::close(pidfd);
  // The child's copies are the ones that count. Dropped after the reply: nothing of it waits.
  rootfs_ = {};
  shell_ = {};
  return false;
}

void Template::PrepareRootfs() {
  if (rootfs_.ready() || !prepare_rootfs_) return;
  auto prepared = sandbox::PrepareForkRootfs(rootfs_plan_);
  if (!prepared) {
    Complain(std::move(prepared).error().Context("prepare a child's rootfs").ToString() +
             "; the children build their own from now on");
    prepare_rootfs_ = false;
    plan_.mounts = sandbox::BuildForkMountPlan(ChildSpec(spec_));
    return;
  }
  rootfs_ = std::move(*prepared);
}

void Template::PrepareShell() {
  if (shell_.ready() || !use_shells_ || !rootfs_.ready()) return;
  if (!mask_source_) {
    auto source = sandbox::MakeMaskSource();
    if (!source) {
      Complain(std::move(source).error().ToString() + "; the children get new namespaces");
      use_shells_ = false;
      return;
    }
    mask_source_ = std::move(*source);
  }
  auto shell = sandbox::MakeNamespaceShell(std::move(rootfs_), shell_attach_, shell_stack_);
  rootfs_ = {};
  if (!shell) {
    Complain(std::move(shell).error().Context("prepare a child's namespaces").ToString() +
             "; the children get new ones from now on");
    use_shells_ = false;
    PrepareRootfs();  // the failed shell took the prepared trees with it
    return;
  }
  shell_ = std::move(*shell);
}

std::string Template::DescribeFailure(const sandbox::ChildReport& report, bool shell) const {
  std::string what = sandbox::ChildStageName(report.stage);
  if (report.stage != sandbox::ChildStage::kMount) return what;
  switch (report.step) {
    case sandbox::kCreateProcStep:
      return what + " (create) the child's procfs";
    case sandbox::kJoinMountNsStep:
      return what + ": join the mount namespace made ahead";
    case sandbox::kJoinIpcNsStep:
      return what + ": join the ipc namespace made ahead";
    case sandbox::kJoinUtsNsStep:
      return what + ": join the uts namespace made ahead";
    case sandbox::kCloneMaskStep:
      return what + ": clone the empty dir that masks /proc dirs";
    default:
      break;
  }
  const sandbox::MountPlan& mounts = shell ? shell_proc_.all : plan_.mounts;
  if (report.step == sandbox::kAttachLayerStep)
    return what + " the prepared layer on " + mounts.staging;
  if (report.step == sandbox::kAttachRootStep) return what + " the prepared root on " + mounts.root;
  if (report.step < mounts.steps.size()) {
    const sandbox::MountStep& step = mounts.steps[report.step];
    what += " " + (step.fstype.empty() ? step.source : step.fstype) + " on " + step.target;
  }
  return what;
}

void Template::ChildFails(int control, const std::string& type, const std::string& message) {
  (void)WriteFrame(control, FrameType::kInitFailed, 0, EncodeError(MakeError(type, message)));
  ::_exit(125);
}

void Template::ReapChildren() {
  struct signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
  }
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    ChildExit exit;
    exit.pid = pid;
    exit.signaled = WIFSIGNALED(status);
    exit.code = exit.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
    if (auto it = children_.find(pid); it != children_.end()) {
      exit.instance_id = it->second;
      children_.erase(it);
    }
    Send(FrameType::kChildExited, 0, EncodeChildExit(exit));
  }
}

Template* g_template = nullptr;

}  // namespace

std::string TemplateRefusal(Runtime& runtime) {
  std::string reason = runtime.ForkRefusal();
  if (!reason.empty()) return reason;
  int threads = CountThreads();
  if (threads != 1) {
    return threads < 0 ? "cannot count the template's threads (/proc/self/task)"
                       : "the template has " + std::to_string(threads) +
                             " threads, and a fork would copy only one of them";
  }
  return "";
}

TemplateOutcome RunTemplate(int control_fd, Runtime& runtime, const InitRequest& init) {
  auto spec = DecodeTemplateSpec(init.template_spec);
  if (!spec) {
    Complain(spec.error().ToString());
    return {kExitBadStart, ""};
  }
  runtime.Freeze();
  // On cgroup v1 the children share the template's memory cgroup (sized for all of them), so
  // each child's own growth is bounded here: its private data may grow by the function's memory
  // limit beyond what it inherits from the template.
  if (uint64_t data = DataBytes(); data > 0 && init.memory_limit_bytes > 0) {
    uint64_t limit = data + init.memory_limit_bytes;
    std::erase_if(spec->rlimits,
                  [](const TemplateSpec::Limit& l) { return l.resource == RLIMIT_DATA; });
    spec->rlimits.push_back({RLIMIT_DATA, limit, limit});
  }
  // Never deleted, in the template or in a child: a child that destroyed it would free the spec,
  // plan and map the template allocated, and each free writes malloc's bookkeeping into a page
  // the child shares with the template, making that page the child's own (copy-on-write). The
  // agent ends with _exit, so nothing runs its destructor.
  g_template = new Template(control_fd, runtime, std::move(*spec));
  return g_template->Run();
}

}  // namespace ember::agent
