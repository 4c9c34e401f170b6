// `ember run`: runs one command in a new sandbox and exits with its status, as docker and podman
// do: the command's code, 128+N when a signal killed it, 125 when ember itself failed, 126 when
// the command cannot be executed, 127 when it does not exist. A timeout exits 124 (as timeout(1)).
// OOM kills, timeouts and a full writable layer each get a one-line reason on stderr.
#include <cstdio>
#include <string>
#include <vector>

#include "base/units.h"
#include "cli/command.h"
#include "cli/run_session.h"

namespace ember::cli {
namespace {

struct RunFlags {
  std::string image = "python3.11";
  std::string memory = "256M";
  std::string cpus;
  std::string pids = "512";
  std::string net = "loopback";
  std::string tmpfs_size = "64M";
  std::string timeout;
  std::string stop_timeout = "10s";
  std::string id_range = "100000:65536";
  std::string user = "0:0";
  std::string hostname;
  std::vector<std::string> env;
  std::string workdir = "/";
  bool verbose = false;
  std::vector<std::string> command;
};

Result<sandbox::IdRange> ParseIdRange(const std::string& text) {
  auto colon = text.find(':');
  auto invalid = Fail(ErrorCode::kInvalidArgument,
                      "invalid --id-range '" + text +
                          "': use HOST_BASE:COUNT with a non-zero base, such as 100000:65536");
  if (colon == std::string::npos) return invalid;
  auto base = ParseCount(text.substr(0, colon), "id range base", 1, 4294967294ULL);
  auto count = ParseCount(text.substr(colon + 1), "id range count", 1, 4294967294ULL);
  if (!base || !count || *base + *count > 4294967295ULL) return invalid;
  return sandbox::IdRange{static_cast<uint32_t>(*base), static_cast<uint32_t>(*count)};
}

Result<std::pair<uint32_t, uint32_t>> ParseUser(const std::string& text) {
  auto colon = text.find(':');
  std::string uid = text.substr(0, colon);
  std::string gid = colon == std::string::npos ? uid : text.substr(colon + 1);
  auto u = ParseCount(uid, "--user uid", 0, 4294967294ULL);
  auto g = ParseCount(gid, "--user gid", 0, 4294967294ULL);
  if (!u || !g) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid --user '" + text + "': use UID or UID:GID (numbers inside the sandbox)");
  }
  return std::make_pair(static_cast<uint32_t>(*u), static_cast<uint32_t>(*g));
}

// Flags → a sandbox spec and run options; every error names the flag and the value.
Result<RunRequest> BuildRequest(const RunFlags& flags, const GlobalOptions& global) {
  RunRequest request;
  request.data_dir = global.data_dir;
  request.run_dir = global.run_dir;
  request.image = flags.image;
  request.verbose = flags.verbose;
  sandbox::SandboxSpec& spec = request.spec;
  spec.id = sandbox::NewSandboxId();
  spec.hostname = flags.hostname;
  EMBER_ASSIGN_OR_RETURN(spec.limits.memory_bytes, ParseSize(flags.memory, "--memory"));
  if (*spec.limits.memory_bytes < (4ULL << 20)) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid --memory '" + flags.memory + "': the smallest limit is 4M");
  }
  if (!flags.cpus.empty()) {
    EMBER_ASSIGN_OR_RETURN(spec.limits.cpus, ParseCpus(flags.cpus));
  }
  EMBER_ASSIGN_OR_RETURN(spec.limits.pids, ParseCount(flags.pids, "--pids", 1, 4194304));
  if (flags.net == "none") {
    spec.network = sandbox::NetworkMode::kNone;
  } else if (flags.net == "loopback") {
    spec.network = sandbox::NetworkMode::kLoopback;
  } else {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid --net '" + flags.net + "': use none or loopback");
  }
  EMBER_ASSIGN_OR_RETURN(spec.tmpfs_size, ParseSize(flags.tmpfs_size, "--tmpfs-size"));
  if (!flags.timeout.empty()) {
    EMBER_ASSIGN_OR_RETURN(request.timeout, ParseDuration(flags.timeout, "--timeout"));
  }
  EMBER_ASSIGN_OR_RETURN(request.stop_timeout, ParseDuration(flags.stop_timeout, "--stop-timeout"));
  EMBER_ASSIGN_OR_RETURN(spec.ids, ParseIdRange(flags.id_range));
  EMBER_ASSIGN_OR_RETURN(auto user, ParseUser(flags.user));
  spec.uid = user.first;
  spec.gid = user.second;
  spec.env = sandbox::DefaultEnv();
  for (const auto& kv : flags.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(ErrorCode::kInvalidArgument, "invalid --env '" + kv + "': use KEY=VALUE");
    }
    std::string key = kv.substr(0, eq + 1);
    std::erase_if(spec.env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    spec.env.push_back(kv);
  }
  spec.workdir = flags.workdir;
  spec.rlimits = sandbox::DefaultRlimits();
  spec.argv = flags.command;
  return request;
}

}  // namespace

void RegisterRunCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run = app.add_subcommand(
      "run",
      "Run a command in a new sandbox: its own user, pid, mount, ipc, uts, net and cgroup\n"
      "namespaces, the image read-only under a private in-memory writable layer, no\n"
      "capabilities, a seccomp allowlist and cgroup limits. Exits with the command's status\n"
      "(128+N on signal N), 124 on --timeout, 125 if ember failed, 126 if the command cannot\n"
      "be executed, 127 if it does not exist.");
  run->add_option("--image", flags->image, "image to use as the root filesystem")
      ->capture_default_str();
  run->add_option("--memory", flags->memory, "memory limit (K, M, G suffixes)")
      ->capture_default_str();
  run->add_option("--cpus", flags->cpus, "CPU limit in CPUs, such as 0.5 (default: no limit)");
  run->add_option("--pids", flags->pids, "maximum number of processes and threads")
      ->capture_default_str();
  run->add_option("--net", flags->net, "network: none (no usable interface) or loopback")
      ->capture_default_str();
  run->add_option("--tmpfs-size", flags->tmpfs_size, "size of the private writable layer")
      ->capture_default_str();
  run->add_option("--timeout", flags->timeout, "kill the sandbox after this long, such as 10s");
  run->add_option("--stop-timeout", flags->stop_timeout,
                  "after forwarding SIGINT/TERM/HUP/QUIT, kill the sandbox if still running")
      ->capture_default_str();
  run->add_option("-e,--env", flags->env, "set an environment variable KEY=VALUE (repeatable)");
  run->add_option("-w,--workdir", flags->workdir, "working directory inside the sandbox")
      ->capture_default_str();
  run->add_option("-u,--user", flags->user, "UID[:GID] to run as, inside the sandbox")
      ->capture_default_str();
  run->add_option("--hostname", flags->hostname, "hostname (default: the sandbox id)");
  run->add_option("--id-range", flags->id_range,
                  "host ids the sandbox's ids 0..COUNT-1 map to, as BASE:COUNT")
      ->capture_default_str();
  run->add_flag("-v,--verbose", flags->verbose, "print the sandbox id and start timings");
  run->callback([flags, &global, exit_code] {
    flags->command = global.run_command;
    if (flags->command.empty()) {
      std::fprintf(stderr, "ember: run: no command given (ember run [OPTIONS] [--] COMMAND)\n");
      *exit_code = kRunEmberError;
      return;
    }
    auto request = BuildRequest(*flags, global);
    if (!request) {
      std::fprintf(stderr, "ember: %s\n", request.error().ToString().c_str());
      *exit_code = kRunEmberError;
      return;
    }
    *exit_code = RunInSandbox(*request);
  });
}

namespace {

// Whether `arg` is an option of `app` that takes a separate value ("--memory 1G", not "-v").
bool TakesSeparateValue(const CLI::App& app, const std::string& arg) {
  if (arg.find('=') != std::string::npos) return false;
  const CLI::Option* option = app.get_option_no_throw(arg);
  return option != nullptr && option->get_items_expected_max() > 0;
}

}  // namespace

std::vector<std::string> SplitRunCommand(const CLI::App& app, std::vector<std::string>* args) {
  size_t i = 1;
  for (; i < args->size(); ++i) {
    const std::string& arg = (*args)[i];
    if (arg == "run") break;
    if (arg.empty() || arg[0] != '-') return {};  // another subcommand
    if (TakesSeparateValue(app, arg)) ++i;
  }
  if (i >= args->size()) return {};
  const CLI::App* run = nullptr;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == "run") run = sub;
  }
  for (++i; i < args->size(); ++i) {
    const std::string& arg = (*args)[i];
    if (arg == "--" || arg.empty() || arg[0] != '-') {
      size_t first = arg == "--" ? i + 1 : i;
      std::vector<std::string> command(args->begin() + static_cast<long>(first), args->end());
      args->resize(i);
      return command;
    }
    if (run != nullptr && TakesSeparateValue(*run, arg)) ++i;
  }
  return {};
}

}  // namespace ember::cli
