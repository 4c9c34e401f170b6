// `ember invoke NAME [-d JSON|@file|@-] [--boot MODE] [-v]`: one invocation through the daemon.
// stdout gets the result and nothing else (so `ember invoke f | jq` works); the error, its
// traceback and -v's details go to stderr. Exit 0 on success, 1 when the function failed, 2 on
// a usage error or an event the daemon refuses, and ExitCodeFor's codes otherwise.
#include <unistd.h>

#include <cstdio>

#include "base/fs.h"
#include "cli/client.h"

namespace ember::cli {
namespace {

struct InvokeArgs {
  std::string name;
  std::string data = "{}";
  std::string boot;
  bool verbose = false;
  std::string output = "text";
};

Result<std::string> ReadStdin() {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EINTR) continue;
      return FailErrno("read the event from stdin");
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

// -d's value: JSON text as is, @FILE for a file's content, @- for stdin. It is sent unchecked:
// the daemon is the one judge of what a valid event is.
Result<std::string> EventFrom(const std::string& data) {
  if (data == "@-") return ReadStdin();
  if (data.size() > 1 && data[0] == '@') {
    auto content = ReadFile(data.substr(1));
    if (!content) return Fail(std::move(content).error().Context("read the event file"));
    return content;
  }
  return data;
}

void PrintDetails(const daemon::InvokeMetadata& meta) {
  if (!meta.request_id.empty()) std::fprintf(stderr, "request   %s\n", meta.request_id.c_str());
  if (!meta.instance.empty()) {
    std::fprintf(stderr, "instance  %s (boot %s)\n", meta.instance.c_str(), meta.boot_mode.c_str());
  }
  if (!meta.timings_ms.empty()) {
    std::string line;
    for (const auto& [phase, ms] : meta.timings_ms) {
      char entry[64];
      std::snprintf(entry, sizeof(entry), "%s%s %.3f ms", line.empty() ? "" : ", ", phase.c_str(),
                    ms);
      line += entry;
    }
    std::fprintf(stderr, "timing    %s\n", line.c_str());
  }
}

int RunInvoke(const GlobalOptions& global, const InvokeArgs& args) {
  OutputFormat format = ParseOutputFormat(args.output);
  auto event = EventFrom(args.data);
  if (!event) return ReportError(event.error());
  std::string target = "/v1/functions/" + daemon::PercentEncode(args.name) + "/invoke";
  if (!args.boot.empty()) target += "?boot=" + daemon::PercentEncode(args.boot);
  auto client = DaemonClient(global);
  auto response = client.Request("POST", target, *event, "application/json");
  if (!response) return ReportError(response.error());
  if (args.verbose) PrintDetails(daemon::ParseInvokeMetadata(*response));
  if (response->status < 200 || response->status >= 300) {
    return ReportApiError(*response, "invoke " + args.name, format);
  }
  const std::string& body = response->body;
  std::printf("%s%s", body.c_str(), !body.empty() && body.back() == '\n' ? "" : "\n");
  return 0;
}

}  // namespace

void RegisterInvokeCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<InvokeArgs>();
  CLI::App* invoke = app.add_subcommand(
      "invoke", "invoke a deployed function with a JSON event; prints the result");
  invoke->add_option("name", args->name, "function name")->required();
  invoke->add_option("-d,--data", args->data, "the event: JSON, @FILE, or @- for stdin")
      ->capture_default_str();
  invoke->add_option("--boot", args->boot, "force a boot mode (default: the fastest available)")
      ->check(CLI::IsMember({"plain", "cold", "warm", "fork"}));
  invoke->add_flag("-v,--verbose", args->verbose,
                   "print the request id, instance, boot mode and timings to stderr");
  AddOutputOption(invoke, &args->output);
  invoke->callback([&global, args, exit_code] { *exit_code = RunInvoke(global, *args); });
}

}  // namespace ember::cli
