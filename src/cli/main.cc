// ember: the command-line entry point. Parses global options, then hands off to a subcommand.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/log.h"
#include "base/units.h"
#include "cli/command.h"

namespace ember::cli {

int ExitCodeFor(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
      return 2;
    case ErrorCode::kNotFound:
      return 3;
    case ErrorCode::kBusy:
    case ErrorCode::kAlreadyExists:
      return 4;
    case ErrorCode::kPermissionDenied:
      return 5;
    case ErrorCode::kCorrupt:
      return 6;
    case ErrorCode::kUnavailable:
    case ErrorCode::kUnsupported:
      return 7;
    case ErrorCode::kResourceExhausted:
      return 8;
    case ErrorCode::kTimeout:
      return 9;
    default:
      return 1;
  }
}

std::chrono::seconds ImageLinger() {
  constexpr std::chrono::seconds kDefault(30);
  const char* text = std::getenv("EMBER_IMAGE_LINGER");
  if (text == nullptr || *text == '\0') return kDefault;
  if (std::string_view(text) == "0") return std::chrono::seconds(0);
  auto parsed = ParseDuration(text, "EMBER_IMAGE_LINGER");
  if (!parsed) {
    spdlog::warn("{}; using {}s", parsed.error().ToString(), kDefault.count());
    return kDefault;
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*parsed);
}

std::string ExecutableDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

std::string CgroupName() {
  const char* name = std::getenv("EMBER_CGROUP_NAME");
  return name != nullptr && *name != '\0' ? name : "ember";
}

int ReportError(const Error& error) {
  std::fprintf(stderr, "ember: %s\n", error.ToString().c_str());
  return ExitCodeFor(error);
}

namespace {

std::string FromEnv(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// <run-dir>/ember.sock, with --run-dir looked up in the arguments before parsing (the commands
// run inside the parse, so the default cannot wait for it).
std::string DefaultSocket(const std::vector<std::string>& args, std::string run_dir) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--run-dir" && i + 1 < args.size()) run_dir = args[i + 1];
    if (args[i].rfind("--run-dir=", 0) == 0) run_dir = args[i].substr(10);
  }
  return run_dir + "/ember.sock";
}

// The subcommand the arguments name: the first argument that is neither a global option nor a
// global option's value; "" when help or the version is asked for before one.
std::string RequestedCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--data-dir" || arg == "--run-dir" || arg == "--socket" || arg == "--log-level") {
      ++i;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "--version" || arg == "--") return "";
    if (arg.empty() || arg[0] != '-') return std::string(arg);
  }
  return "";
}

}  // namespace
}  // namespace ember::cli

namespace {

void RegisterOtherCommands(CLI::App& app, ember::cli::GlobalOptions& global, int* exit_code) {
  using namespace ember::cli;
  RegisterImageCommands(app, global, exit_code);
  RegisterClientCommands(app, global, exit_code);
  RegisterDoctorCommand(app, global, exit_code);
  RegisterCleanupCommand(app, global, exit_code);
  RegisterDaemonCommand(app, global, exit_code);
  RegisterSnapshotCommands(app, global, exit_code);
}

int RunCli(int argc, char** argv) {
  using namespace ember::cli;
  CLI::App app{
      "ember: a serverless sandbox runtime. Runs commands and functions in isolated sandboxes\n"
      "on shared read-only images with a private in-memory writable layer.",
      "ember"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ember ") + EMBER_VERSION);
  GlobalOptions global{FromEnv("EMBER_DATA_DIR", "/var/lib/ember"),
                       FromEnv("EMBER_RUN_DIR", "/run/ember"), FromEnv("EMBER_LOG", "warn")};
  app.add_option("--data-dir", global.data_dir,
                 "where images and state are stored (env EMBER_DATA_DIR)")
      ->capture_default_str();
  app.add_option("--run-dir", global.run_dir,
                 "where mounts and runtime locks live (env EMBER_RUN_DIR)")
      ->capture_default_str();
  // Default: ember.sock in the run dir, so that a daemon and its clients started with the same
  // --run-dir (tests, side-by-side daemons) find each other without naming the socket.
  global.socket = FromEnv("EMBER_SOCKET", "");
  app.add_option("--socket", global.socket,
                 "the daemon's API socket, or http://127.0.0.1:PORT (env EMBER_SOCKET; default "
                 "<run-dir>/ember.sock)");
  // Logging is set up before parsing (from EMBER_LOG or the default) and again when --log-level
  // is parsed, so that it is ready before any command runs.
  (void)ember::log::Init(global.log_level);
  app.add_option("--log-level", global.log_level,
                 "trace, debug, info, warn, error or off (env EMBER_LOG)")
      ->capture_default_str()
      ->each([](const std::string& level) {
        if (auto status = ember::log::Init(level); !status) {
          throw CLI::ValidationError("--log-level", status.error().message());
        }
      });

  int exit_code = 0;
  RegisterRunCommand(app, global, &exit_code);
  // `ember run` starts every sandbox: building (and freeing) CLI11's tree of every other command
  // cost it ≈0.17 ms (timestamps at main, at the sandbox's start and at the return: 280 → 154
  // and 112 → 72 us). Another command, an unknown one, or help gets them all.
  if (RequestedCommand(argc, argv) != "run") RegisterOtherCommands(app, global, &exit_code);

  // CLI11 reports usage errors with exceptions; this is the edge where they become exit codes.
  std::vector<std::string> args(argv, argv + argc);
  global.run_command = SplitRunCommand(app, &args);
  if (global.socket.empty()) global.socket = DefaultSocket(args, global.run_dir);
  std::vector<const char*> cargs;
  for (const auto& a : args) cargs.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    if (code == 0) return 0;
    // `ember run` reserves its small exit codes for the command: its usage errors are 125.
    bool in_run = false;
    for (const auto* sub : app.get_subcommands()) in_run |= sub->get_name() == "run";
    return in_run ? 125 : 2;
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // The core returns errors as values; only a library (CLI11, the allocator) can throw.
  try {
    return RunCli(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ember: internal error: unknown exception\n");
  }
  return 125;
}
