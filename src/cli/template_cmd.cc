// `ember template ls`: the fork-boot templates the daemon keeps, one line each.
#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace ember::cli {
namespace {

int RunTemplateList(const GlobalOptions& global, const std::string& output) {
  OutputFormat format = ParseOutputFormat(output);
  int exit_code = 0;
  auto items =
      FetchList(global, "/v1/templates", "templates", "list templates", format, &exit_code);
  if (!items) return exit_code;
  std::vector<std::vector<std::string>> rows = {{"FUNCTION", "VERSION", "STATE", "ID", "PID",
                                                 "CHILDREN", "SPAWNED", "NETNS READY", "REASON"}};
  for (const auto& t : *items) {
    const auto& pool = t.contains("netns_pool") ? t["netns_pool"] : nlohmann::json::object();
    rows.push_back({JsonText(t, "function"), JsonText(t, "version"), JsonText(t, "state"),
                    JsonText(t, "id"), JsonText(t, "pid"), JsonText(t, "children"),
                    JsonText(t, "spawned"), JsonText(pool, "ready"), JsonText(t, "reason")});
  }
  PrintTable(rows);
  return 0;
}

}  // namespace

void RegisterTemplateCommands(CLI::App& app, GlobalOptions& global, int* exit_code) {
  CLI::App* group = app.add_subcommand(
      "template", "fork-boot templates: frozen, initialized instances that new ones fork from");
  group->require_subcommand(1);
  auto output = std::make_shared<std::string>("text");
  CLI::App* ls = group->add_subcommand("ls", "list templates, their state and their children");
  AddOutputOption(ls, output.get());
  ls->callback([&global, output, exit_code] { *exit_code = RunTemplateList(global, *output); });
}

}  // namespace ember::cli
