// What the client commands (deploy, invoke, ls, ps, logs, rm) share: the connection to the
// daemon named by --socket / EMBER_SOCKET, the --output option, error printing and tables.
// The commands are thin: a request, then either the answer printed or the error reported.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "daemon/api_reply.h"
#include "daemon/http_client.h"

namespace ember::cli {

enum class OutputFormat { kText, kJson };

// Adds `--output,-o text|json` (default text); CLI11 refuses other values (exit 2).
void AddOutputOption(CLI::App* command, std::string* output);
OutputFormat ParseOutputFormat(const std::string& output);

// A client for the daemon at global.socket (a path or http://127.0.0.1:PORT).
daemon::HttpClient DaemonClient(const GlobalOptions& global);

// How long the quick calls (ls, ps, rm, logs) wait; deploy and invoke wait as long as the daemon
// takes (it enforces the function's own timeouts).
inline constexpr std::chrono::milliseconds kQuickTimeout{30000};

// Reports an error answer and returns the exit code (ExitCodeFor of ToError): in text mode
// "ember: CONTEXT: CODE: MESSAGE" and then the traceback / the instance's output to stderr; in
// json mode the daemon's JSON on stdout as well, for scripts.
// For ls and ps: GETs `path` and returns the array under `key` of the daemon's answer. Returns
// nullopt with *exit_code set when there is nothing more to print: an error was reported, or
// --output json printed the answer as it is.
std::optional<nlohmann::json> FetchList(const GlobalOptions& global, const std::string& path,
                                        const char* key, const std::string& what,
                                        OutputFormat format, int* exit_code);
// A field of a JSON object as table text: strings as they are, other values dumped, "-" if absent.
std::string JsonText(const nlohmann::json& object, const char* key);

int ReportApiError(const daemon::HttpResponse& response, std::string_view context,
                   OutputFormat format);

// Prints rows as columns two spaces apart, each as wide as its widest cell; the first row is
// the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// "3s", "5m", "2h", "4d" since an RFC 3339 UTC time ("2026-11-21T15:00:00Z"); the text itself
// when it does not parse.
std::string AgeSince(const std::string& rfc3339);

// The client commands, one file each; RegisterClientCommands (command.h) registers them all.
void RegisterDeployCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterInvokeCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterLsCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterPsCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterTemplateCommands(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterLogsCommand(CLI::App& app, GlobalOptions& global, int* exit_code);
void RegisterRmCommand(CLI::App& app, GlobalOptions& global, int* exit_code);

}  // namespace ember::cli
