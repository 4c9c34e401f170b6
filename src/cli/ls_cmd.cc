// `ember ls`: the deployed functions, with their limits and how many instances each has.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/units.h"
#include "cli/client.h"

namespace ember::cli {
namespace {

using nlohmann::json;

std::string Text(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

uint64_t Count(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

int RunLs(const GlobalOptions& global, const std::string& output) {
  OutputFormat format = ParseOutputFormat(output);
  auto client = DaemonClient(global);
  auto response = client.Request("GET", "/v1/functions", {}, {}, {}, kQuickTimeout);
  if (!response) return ReportError(response.error());
  if (response->status != 200) return ReportApiError(*response, "list functions", format);
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response->body.c_str());
    return 0;
  }
  auto doc = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc["functions"].is_array()) {
    return ReportError(Error(ErrorCode::kIo,
                             "list functions: the daemon's answer is not "
                             "{\"functions\": [...]}: " +
                                 response->body.substr(0, 200)));
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "VERSION", "RUNTIME", "IMAGE", "MEMORY", "IDLE", "BUSY", "BOOTING", "DEPLOYED"}};
  for (const auto& f : doc["functions"]) {
    const json& manifest = f.contains("manifest") ? f["manifest"] : json::object();
    const json& instances = f.contains("instances") ? f["instances"] : json::object();
    std::string memory = manifest.contains("memory_bytes") && manifest["memory_bytes"].is_number()
                             ? FormatSize(manifest["memory_bytes"].get<uint64_t>())
                             : "-";
    rows.push_back({Text(f, "name"), Text(f, "version"), Text(manifest, "runtime"),
                    Text(manifest, "image"), memory, std::to_string(Count(instances, "idle")),
                    std::to_string(Count(instances, "busy")),
                    std::to_string(Count(instances, "booting")), Text(f, "deployed")});
  }
  PrintTable(rows);
  return 0;
}

}  // namespace

void RegisterLsCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto output = std::make_shared<std::string>("text");
  CLI::App* ls = app.add_subcommand("ls", "list deployed functions");
  AddOutputOption(ls, output.get());
  ls->callback([&global, output, exit_code] { *exit_code = RunLs(global, *output); });
}

}  // namespace ember::cli
