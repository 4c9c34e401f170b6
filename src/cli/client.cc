#include "cli/client.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

namespace ember::cli {

void AddOutputOption(CLI::App* command, std::string* output) {
  command->add_option("--output,-o", *output, "text or json (the daemon's JSON, for scripts)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

OutputFormat ParseOutputFormat(const std::string& output) {
  return output == "json" ? OutputFormat::kJson : OutputFormat::kText;
}

daemon::HttpClient DaemonClient(const GlobalOptions& global) {
  return daemon::HttpClient(global.socket);
}

int ReportApiError(const daemon::HttpResponse& response, std::string_view context,
                   OutputFormat format) {
  auto api_error = daemon::ParseApiError(response);
  if (!api_error) return 0;
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response.body.c_str());
    std::fflush(stdout);
  }
  int code = ReportError(daemon::ToError(*api_error, context));
  // The traceback already ends with the exception line; print it as Python would.
  auto print_block = [](const std::string& title, const std::string& text) {
    if (text.empty()) return;
    std::fprintf(stderr, "%s%s%s", title.c_str(), text.c_str(), text.back() == '\n' ? "" : "\n");
  };
  print_block("", api_error->traceback);
  print_block("output of the instance:\n", api_error->output);
  return code;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string AgeSince(const std::string& rfc3339) {
  struct tm tm {};
  const char* end = ::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return rfc3339;
  time_t then = ::timegm(&tm);
  long long seconds = std::max<long long>(0, static_cast<long long>(::time(nullptr) - then));
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  if (seconds < 172800) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

void RegisterClientCommands(CLI::App& app, GlobalOptions& global, int* exit_code) {
  RegisterDeployCommand(app, global, exit_code);
  RegisterInvokeCommand(app, global, exit_code);
  RegisterLsCommand(app, global, exit_code);
  RegisterPsCommand(app, global, exit_code);
  RegisterTemplateCommands(app, global, exit_code);
  RegisterLogsCommand(app, global, exit_code);
  RegisterRmCommand(app, global, exit_code);
}

std::optional<nlohmann::json> FetchList(const GlobalOptions& global, const std::string& path,
                                        const char* key, const std::string& what,
                                        OutputFormat format, int* exit_code) {
  auto client = DaemonClient(global);
  auto response = client.Request("GET", path, {}, {}, {}, kQuickTimeout);
  if (!response) {
    *exit_code = ReportError(response.error());
    return std::nullopt;
  }
  if (response->status != 200) {
    *exit_code = ReportApiError(*response, what, format);
    return std::nullopt;
  }
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response->body.c_str());
    *exit_code = 0;
    return std::nullopt;
  }
  auto doc = nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc[key].is_array()) {
    *exit_code =
        ReportError(Error(ErrorCode::kIo, what + ": the daemon's answer is not {\"" + key +
                                              "\": [...]}: " + response->body.substr(0, 200)));
    return std::nullopt;
  }
  return doc[key];
}

std::string JsonText(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace ember::cli
