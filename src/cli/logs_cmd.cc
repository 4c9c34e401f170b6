// `ember logs NAME [--instance ID] [-f]`: what a function's instances printed. With -f it polls
// every 250 ms from the offset the daemon returned (X-Ember-Log-Offset) until interrupted; a
// read cut short (X-Ember-Log-More) is continued at once.
#include <cstdio>
#include <thread>

#include "cli/client.h"

namespace ember::cli {
namespace {

constexpr std::chrono::milliseconds kPollInterval{250};

struct LogsArgs {
  std::string name;
  std::string instance;
  bool follow = false;
};

int RunLogs(const GlobalOptions& global, const LogsArgs& args) {
  auto client = DaemonClient(global);
  std::string base = "/v1/functions/" + daemon::PercentEncode(args.name) + "/logs";
  std::string offset;
  for (;;) {
    std::string target = base;
    char separator = '?';
    if (!args.instance.empty()) {
      target += separator + std::string("instance=") + daemon::PercentEncode(args.instance);
      separator = '&';
    }
    if (!offset.empty())
      target += separator + std::string("offset=") + daemon::PercentEncode(offset);
    auto response = client.Request("GET", target, {}, {}, {}, kQuickTimeout);
    if (!response) return ReportError(response.error());
    if (response->status != 200) {
      return ReportApiError(*response, "logs of " + args.name, OutputFormat::kText);
    }
    std::fwrite(response->body.data(), 1, response->body.size(), stdout);
    std::fflush(stdout);
    offset = response->Header("x-ember-log-offset").value_or(offset);
    // The daemon answers at most 1 MiB at a time and says when there is more right now.
    if (response->Header("x-ember-log-more").value_or("") == "true") continue;
    if (!args.follow) return 0;
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace

void RegisterLogsCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<LogsArgs>();
  CLI::App* logs = app.add_subcommand("logs", "print what a function's instances wrote");
  logs->add_option("name", args->name, "function name")->required();
  logs->add_option("--instance", args->instance, "only this instance's output");
  logs->add_flag("-f,--follow", args->follow, "keep printing new output until interrupted");
  logs->callback([&global, args, exit_code] { *exit_code = RunLogs(global, *args); });
}

}  // namespace ember::cli
