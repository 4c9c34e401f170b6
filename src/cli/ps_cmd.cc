// `ember ps`: the running instances, one line each.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace ember::cli {
namespace {

using nlohmann::json;

std::string Text(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

int RunPs(const GlobalOptions& global, const std::string& output) {
  OutputFormat format = ParseOutputFormat(output);
  auto client = DaemonClient(global);
  auto response = client.Request("GET", "/v1/instances", {}, {}, {}, kQuickTimeout);
  if (!response) return ReportError(response.error());
  if (response->status != 200) return ReportApiError(*response, "list instances", format);
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response->body.c_str());
    return 0;
  }
  auto doc = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc["instances"].is_array()) {
    return ReportError(Error(ErrorCode::kIo,
                             "list instances: the daemon's answer is not "
                             "{\"instances\": [...]}: " +
                                 response->body.substr(0, 200)));
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "FUNCTION", "VERSION", "STATE", "BOOT",
                                                 "PID", "STARTED", "LAST USED", "INVOCATIONS",
                                                 "IN FLIGHT"}};
  for (const auto& i : doc["instances"]) {
    rows.push_back({Text(i, "id"), Text(i, "function"), Text(i, "version"), Text(i, "state"),
                    Text(i, "boot_mode"), Text(i, "pid"), AgeSince(Text(i, "started")) + " ago",
                    AgeSince(Text(i, "last_used")) + " ago", Text(i, "invocations"),
                    Text(i, "in_flight")});
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
