// The rules every manifest field obeys, shared by the ember.toml parser (manifest.cc) and the
// stored-JSON reader (manifest_json.cc) so that both accept exactly the same manifests. Each check
// returns "" when the value is allowed, or the reason it is not, phrased to follow
// "SOURCE: field = VALUE: " (e.g. "must be from 8 to 65536").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/manifest.h"

namespace ember::engine::rules {

inline constexpr std::string_view kFunctionNameRule = "[a-z0-9][a-z0-9_-]{0,62}";
inline constexpr uint64_t kMinMemoryBytes = 16ULL << 20;
inline constexpr double kMinCpus = 0.01;
inline constexpr double kMaxCpus = 64;
inline constexpr int64_t kMinPids = 8;
inline constexpr int64_t kMaxPids = 65536;
inline constexpr std::chrono::milliseconds kMinTimeout{1};
inline constexpr std::chrono::milliseconds kMaxTimeout{15 * 60 * 1000};
inline constexpr std::chrono::milliseconds kMaxKeepAlive{24 * 3600 * 1000};
inline constexpr int64_t kMaxConcurrency = 64;
inline constexpr int64_t kMaxMaxInstances = 100000;
inline constexpr size_t kMaxHandlerLength = 4096;
inline constexpr size_t kMaxEnvEntries = 256;
inline constexpr size_t kMaxEnvValueLength = 32768;

bool IsFunctionName(std::string_view name);
// A C identifier (also what a Python identifier is, restricted to ASCII).
bool IsIdentifier(std::string_view text);

// "" or why not.
std::string NameProblem(std::string_view name);
// For names that arrive in requests and become paths: kInvalidArgument naming the rule.
Status CheckFunctionName(std::string_view name);
std::string HandlerProblem(Runtime runtime, std::string_view handler);
std::string ImageProblem(std::string_view image);
std::string MemoryProblem(uint64_t bytes);
std::string CpusProblem(double cpus);
std::string PidsProblem(int64_t pids);
std::string TimeoutProblem(std::chrono::milliseconds timeout);
std::string EnvKeyProblem(std::string_view key);
std::string EnvValueProblem(std::string_view value);
std::string ConcurrencyProblem(int64_t concurrency);
std::string KeepAliveProblem(std::chrono::milliseconds keep_alive);
std::string MaxInstancesProblem(int64_t max_instances);

// The handler split into its parts (python: module and function; native: library path and
// symbol). Only meaningful for a handler HandlerProblem accepted.
struct HandlerParts {
  std::string file;    // python: the module ("pkg.mod"); native: the library path
  std::string symbol;  // python: the function; native: the C symbol
};
HandlerParts SplitHandler(Runtime runtime, std::string_view handler);

std::optional<Runtime> ParseRuntime(std::string_view text);
std::optional<sandbox::NetworkMode> ParseNetwork(std::string_view text);
const char* NetworkName(sandbox::NetworkMode mode);
std::optional<TemplatePolicy> ParseTemplatePolicy(std::string_view text);
std::optional<SnapshotPolicy> ParseSnapshotPolicy(std::string_view text);
const char* SnapshotPolicyName(SnapshotPolicy policy);
const char* TemplatePolicyName(TemplatePolicy policy);

// Checks a whole manifest (used for manifests that did not come from ember.toml). The error names
// `source`, the field and the value.
Status ValidateManifest(const Manifest& manifest, std::string_view source);

}  // namespace ember::engine::rules
