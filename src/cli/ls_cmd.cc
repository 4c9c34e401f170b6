// `ember ls`: the deployed functions, with their limits and how many instances each has.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/units.h"
#include "cli/client.h"

namespace ember::cli {
namespace {

using nlohmann::json;

uint64_t Count(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

int RunLs(const GlobalOptions& global, const std::string& output) {
  OutputFormat format = ParseOutputFormat(output);
  int exit_code = 0;
  auto items =
      FetchList(global, "/v1/functions", "functions", "list functions", format, &exit_code);
  if (!items) return exit_code;
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "VERSION", "RUNTIME", "IMAGE", "MEMORY", "IDLE", "BUSY", "BOOTING", "DEPLOYED"}};
  for (const auto& f : *items) {
    const json& manifest = f.contains("manifest") ? f["manifest"] : json::object();
    const json& instances = f.contains("instances") ? f["instances"] : json::object();
    std::string memory = manifest.contains("memory_bytes") && manifest["memory_bytes"].is_number()
                             ? FormatSize(manifest["memory_bytes"].get<uint64_t>())
                             : "-";
    rows.push_back({JsonText(f, "name"), JsonText(f, "version"), JsonText(manifest, "runtime"),
                    JsonText(manifest, "image"), memory, std::to_string(Count(instances, "idle")),
                    std::to_string(Count(instances, "busy")),
                    std::to_string(Count(instances, "booting")), JsonText(f, "deployed")});
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
