// `ember ps`: the running instances, one line each.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace ember::cli {
namespace {

using nlohmann::json;

int RunPs(const GlobalOptions& global, const std::string& output) {
  OutputFormat format = ParseOutputFormat(output);
  int exit_code = 0;
  auto items =
      FetchList(global, "/v1/instances", "instances", "list instances", format, &exit_code);
  if (!items) return exit_code;
  std::vector<std::vector<std::string>> rows = {{"ID", "FUNCTION", "VERSION", "STATE", "BOOT",
                                                 "PID", "STARTED", "LAST USED", "INVOCATIONS",
                                                 "IN FLIGHT"}};
  for (const auto& i : *items) {
    rows.push_back({JsonText(i, "id"), JsonText(i, "function"), JsonText(i, "version"),
                    JsonText(i, "state"), JsonText(i, "boot_mode"), JsonText(i, "pid"),
                    AgeSince(JsonText(i, "started")) + " ago",
                    AgeSince(JsonText(i, "last_used")) + " ago", JsonText(i, "invocations"),
                    JsonText(i, "in_flight")});
  }
  PrintTable(rows);
  return 0;
}

}  // namespace

void RegisterPsCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto output = std::make_shared<std::string>("text");
  CLI::App* ps = app.add_subcommand("ps", "list running instances");
  AddOutputOption(ps, output.get());
  ps->callback([&global, output, exit_code] { *exit_code = RunPs(global, *output); });
}

}  // namespace ember::cli
