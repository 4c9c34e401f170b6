// Cold and warm boot (DESIGN.md "Boot modes"): taking a function's snapshot at its entry point,
// and restoring instances from it into fresh sandboxes. The restore itself is done inside the
// sandbox by ember-restore (src/restorer), trusted ember code that runs before any of the
// function's and applies a plan built here (snapshot/restore_plan.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "base/fs.h"
#include "base/log.h"
#include "engine/launcher.h"
#include "snapshot/checkpoint.h"
#include "snapshot/compat_capture.h"
#include "snapshot/shell_handoff.h"
#include "sys/fd_passing.h"

namespace ember::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

BootError Failed(Error error) { return BootError{std::move(error), std::nullopt, ""}; }

// ember-restore's one report (snapshot/restore_plan_format.h): success, or the step that failed.
// A restorer that dies without one (killed, out of memory) is described by its exit.
Status AwaitRestoreReport(int report_fd, sandbox::Sandbox& sandbox, Clock::time_point deadline,
                          snapshot::RestoreReport* report) {
  size_t got = 0;
  auto* bytes = reinterpret_cast<char*>(report);
  while (got < sizeof *report) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Fail(ErrorCode::kTimeout, "ember-restore sent no report in time");
    struct pollfd fds[2] = {{report_fd, POLLIN, 0}, {sandbox.pidfd(), POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      return FailErrno("poll ember-restore's report");
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(report_fd, bytes + got, sizeof *report - got);
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
    } else if (fds[1].revents == 0) {
      continue;
    }
    auto status = sandbox.Wait();
    return Fail(ErrorCode::kUnavailable,
                "ember-restore " + (status ? "exited (" + status->Describe() + ")" : "exited") +
                    " without a report");
  }
  return Ok();
}

}  // namespace

Result<std::string> Launcher::AgentBuild() const {
  return snapshot::AgentBuildMark(options_.agent_dir);
}

snapshot::RestoreSettings Launcher::RestoreSettingsFor(const Manifest& manifest) const {
  (void)manifest;  // every function runs as root of its user namespace today (BuildSpec)
  snapshot::RestoreSettings settings;
  const auto* bpf = reinterpret_cast<const uint8_t*>(seccomp_.instructions.data());
  settings.seccomp_bpf.assign(bpf, bpf + seccomp_.instructions.size() * sizeof(sock_filter));
  settings.exe_path = std::string(kAgentMountPoint) + "/ember-agent";
  return settings;
}

Result<std::shared_ptr<SnapshotSource>> Launcher::OpenSnapshot(const Manifest& manifest,
                                                               const std::string& path) {
  if (!PathExists(options_.agent_dir + "/ember-restore")) {
    return Fail(ErrorCode::kNotFound,
                "ember-restore not found: " + options_.agent_dir +
                    "/ember-restore is missing (build it, or set --agent-dir)");
  }
  EMBER_ASSIGN_OR_RETURN(std::string lower_dir, ImageLowerDir(manifest.image));
  EMBER_ASSIGN_OR_RETURN(std::string build, AgentBuild());
  return SnapshotSource::Open(path, lower_dir, build, RestoreSettingsFor(manifest));
}

Result<snapshot::ProcessState> Launcher::CheckpointInstance(const BootRequest& request) {
  auto booted = Boot(request);
  if (!booted) return Fail(std::move(booted).error().error);
  // The agent is at the function's entry point: initialized, warmed up, blocked reading its next
  // frame on fd 3. It stays stopped after the checkpoint and is then killed with its sandbox.
  snapshot::CheckpointOptions options;
  options.control_fd = 3;
  options.leave_stopped = true;
  auto state = snapshot::Checkpoint(booted->sandbox.pid(), options);
  auto build = AgentBuild();
  if (auto destroyed = booted->sandbox.Destroy(); !destroyed) {
    spdlog::warn("snapshot source {}: {}", request.instance_id, destroyed.error().ToString());
  }
  std::string context =
      "snapshot " + request.manifest.name + " (instance " + request.instance_id + ")";
  if (!state) return tl::unexpected(std::move(state).error().Context(context));
  if (!build) return tl::unexpected(std::move(build).error().Context(context));
  state->compat.ember_version = *build;
  return std::move(*state);
}

Result<Launcher::Prepared> Launcher::PrepareRestore(const BootRequest& request, bool parked) {
  EMBER_ASSIGN_OR_RETURN(auto prepared, Prepare(request));
  prepared.spec.restorer = true;
  prepared.spec.argv = {std::string(kAgentMountPoint) + "/ember-restore"};
  if (parked) prepared.spec.argv.emplace_back(snapshot::kParkedFlag);
  prepared.spec.env.clear();  // the restored process's environment is in its memory
  return prepared;
}

Result<RestoreShell> Launcher::BuildRestoreShell(const BootRequest& request) {
  EMBER_ASSIGN_OR_RETURN(auto prepared, PrepareRestore(request, /*parked=*/true));
  int socks[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) != 0) {
    return FailErrno("create the handoff socket of restore shell " + request.instance_id);
  }
  UniqueFd ours(socks[0]), theirs(socks[1]);
  auto started =
      StartInstance(prepared.spec, std::move(prepared.cgroup), nullptr, {theirs.get(), -1, -1});
  if (!started) {
    return tl::unexpected(std::move(started).error().Context(
        "build restore shell " + request.instance_id + " of " + request.manifest.name));
  }
  return RestoreShell{std::move(*started), std::move(ours)};
}

namespace {

// ember-restore's report channel: {read end, write end}.
Result<std::pair<UniqueFd, UniqueFd>> ReportPipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return FailErrno("create ember-restore's report pipe");
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Hands a parked shell its instance (snapshot/shell_handoff.h); returns the read end of the
// restorer's report channel.
Result<UniqueFd> HandOff(const RestoreShell& shell, const std::string& instance_id, int plan_fd,
                         int image_fd) {
  snapshot::ShellHandoff handoff{};
  handoff.magic = snapshot::kShellHandoffMagic;
  if (instance_id.empty() || instance_id.size() > sizeof handoff.hostname) {
    return Fail(ErrorCode::kInvalidArgument, "instance id '" + instance_id + "' is no hostname");
  }
  handoff.hostname_length = static_cast<uint32_t>(instance_id.size());
  std::memcpy(handoff.hostname, instance_id.data(), instance_id.size());
  EMBER_ASSIGN_OR_RETURN(auto report, ReportPipe());
  auto& [report_read, report_write] = report;
  const int fds[snapshot::kShellHandoffFds] = {plan_fd, image_fd, report_write.get()};
  if (sys::SendWithFds(shell.go.get(), &handoff, sizeof handoff, fds, std::size(fds)) !=
      static_cast<ssize_t>(sizeof handoff)) {
    return FailErrno("hand restore shell " + shell.booted.sandbox.id() + " its instance");
  }
  return std::move(report_read);
}

}  // namespace

tl::expected<BootedInstance, BootError> Launcher::Restore(const BootRequest& request,
                                                          const SnapshotSource& source,
                                                          std::optional<RestoreShell> shell) {
  const Manifest& m = request.manifest;
  bool cold = request.mode == BootMode::kCold;
  auto start = Clock::now();
  auto context = [&](Error e) {
    return Failed(std::move(e).Context(std::string("restore (") + BootModeName(request.mode) +
                                       " boot) instance " + request.instance_id + " of " + m.name +
                                       " from " + source.path()));
  };
  auto deadline = start + options_.init_timeout;
  snapshot::RestoreReport report{};
  if (shell) {
    auto handed = RestoreInShell(request, source, std::move(*shell));
    Status restored =
        handed ? AwaitRestoreReport(handed->report.get(), handed->booted.sandbox, deadline, &report)
               : Status(tl::unexpected(handed.error()));
    if (restored) return FinishRestore(request, source, std::move(handed->booted), report, start);
    if (handed && !handed->DroppedUnread()) return tl::unexpected(context(restored.error()));
    // A shell that died parked (killed, or its cgroup's OOM) is not the instance's problem.
    spdlog::warn("{} (restoring {} into a new sandbox)", restored.error().ToString(),
                 request.instance_id);
  }
  auto prepared = PrepareRestore(request, /*parked=*/false);
  if (!prepared) return tl::unexpected(context(prepared.error()));
  auto pipe = ReportPipe();
  if (!pipe) return tl::unexpected(context(pipe.error()));
  auto& [report_read, report_write] = *pipe;
  // The restorer installs the seccomp filter itself, as its last step (RestoreSettings).
  auto started = StartInstance(prepared->spec, std::move(prepared->cgroup), nullptr,
                               {source.plan_fd(cold), source.image_fd(), report_write.get()});
  if (!started) return tl::unexpected(context(started.error()));
  report_write.reset();
  if (auto restored = AwaitRestoreReport(report_read.get(), started->sandbox, deadline, &report);
      !restored) {
    return tl::unexpected(context(restored.error()));
  }
  return FinishRestore(request, source, std::move(*started), report, start);
}

Result<Launcher::ShellRestore> Launcher::RestoreInShell(const BootRequest& request,
                                                        const SnapshotSource& source,
                                                        RestoreShell shell) {
  auto start = Clock::now();
  bool cold = request.mode == BootMode::kCold;
  EMBER_ASSIGN_OR_RETURN(UniqueFd report, HandOff(shell, request.instance_id, source.plan_fd(cold),
                                                  source.image_fd()));
  shell.booted.sandbox.Rename(request.instance_id);
  return ShellRestore{std::move(shell.booted), std::move(report), start, std::move(shell.go)};
}

bool Launcher::ShellRestore::DroppedUnread() const {
  return sys::PeerClosedWithDataUnread(go.get());
}

tl::expected<BootedInstance, BootError> Launcher::FinishRestore(
    const BootRequest& request, const SnapshotSource& source, BootedInstance booted,
    const snapshot::RestoreReport& report, Clock::time_point start) {
  auto context = [&](Error e) {
    return Failed(std::move(e).Context(std::string("restore (") + BootModeName(request.mode) +
                                       " boot) instance " + request.instance_id + " of " +
                                       request.manifest.name + " from " + source.path()));
  };
  if (report.magic != snapshot::kReportMagic) {
    return tl::unexpected(
        context(Error(ErrorCode::kCorrupt, "ember-restore's report has a bad magic")));
  }
  if (auto ok = snapshot::CheckRestoreReport(report); !ok) {
    return tl::unexpected(context(ok.error()));
  }
  booted.timings.sandbox = Since(start);
  auto us = [&](uint32_t phase) { return report.phase_ns[phase] / 1000; };
  spdlog::debug(
      "restore {}: sandbox and report {} us; ember-restore {} us (setup {}, memory {}, files {}, "
      "signals {}, threads {})",
      request.instance_id, booted.timings.sandbox.count(), us(snapshot::kPhaseTotal),
      us(snapshot::kPhaseSetup), us(snapshot::kPhaseMemory), us(snapshot::kPhaseFiles),
      us(snapshot::kPhaseSignals), us(snapshot::kPhaseThreads));

  // The restored agent is where it was checkpointed: reading its next frame. The first one
  // gives it its identity and runs the runtime's after-fork hooks (reseeding).
  std::string payload = "{\"instance_id\":\"" + request.instance_id + "\"}";
  if (auto sent = agent::WriteFrame(booted.control.get(), agent::FrameType::kRestored, 1, payload);
      !sent) {
    return tl::unexpected(context(sent.error()));
  }
  ::fcntl(booted.log.get(), F_SETFL, O_NONBLOCK);
  // Its ready comes to the Instance, as a fork-boot child's does: the first invocation is
  // written behind kRestored at once, and the hooks run while it travels (Instance::OnReady
  // times them as `init`).
  booted.awaiting_ready = true;
  return booted;
}

}  // namespace ember::engine
