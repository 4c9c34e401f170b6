#include "engine/manifest_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "image/name.h"

namespace ember::engine::rules {
namespace {

bool IsLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

std::string Range(int64_t min, int64_t max) {
  return "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string PythonHandlerProblem(std::string_view handler) {
  constexpr const char* kForm =
      "a python3.11 handler is \"module.function\" (e.g. \"handler.handle\" for def handle(event, "
      "context) in handler.py; packages: \"pkg.mod.handle\")";
  size_t dot = handler.rfind('.');
  if (dot == std::string_view::npos) return kForm;
  std::string_view rest = handler;
  while (!rest.empty()) {
    size_t next = rest.find('.');
    if (!IsIdentifier(rest.substr(0, next))) return kForm;
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next + 1);
    if (rest.empty()) return kForm;
  }
  return "";
}

std::string NativeHandlerProblem(std::string_view handler) {
  constexpr const char* kForm =
      "a native handler is \"path/to/lib.so:symbol\" (a library inside the bundle and the C "
      "function it exports, e.g. \"libhello.so:handle\")";
  size_t colon = handler.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return kForm;
  std::string_view path = handler.substr(0, colon);
  if (!IsIdentifier(handler.substr(colon + 1))) {
    return std::string(kForm) + "; the symbol must be a C identifier";
  }
  if (path.front() == '/') return "the library must be a relative path inside the bundle";
  if (path.back() == '/') return kForm;
  std::string_view rest = path;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    if (part == ".." || part.find('\0') != std::string_view::npos) {
      return "the library path must stay inside the bundle (no '..')";
    }
    if (slash == std::string_view::npos) {
      if (part.empty() || part == ".") return kForm;
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  return "";
}

std::string ProcessHandlerProblem(std::string_view handler) {
  if (handler.find_first_not_of(" \t") == std::string_view::npos) {
    return "a process handler is the command to run, e.g. \"./handler.sh\" or \"python3 app.py\"";
  }
  if (handler.find('\0') != std::string_view::npos) return "the command contains a NUL byte";
  if (handler.find_first_of("\r\n") != std::string_view::npos)
    return "the command must be one line";
  return "";
}

}  // namespace

bool IsFunctionName(std::string_view name) {
  if (name.empty() || name.size() > 63 || !IsLower(name[0])) return false;
  for (char c : name) {
    if (!IsLower(c) && c != '_' && c != '-') return false;
  }
  return true;
}

bool IsIdentifier(std::string_view text) {
  if (text.empty() || !IsIdentStart(text[0])) return false;
  for (char c : text) {
    if (!IsIdentChar(c)) return false;
  }
  return true;
}

std::string NameProblem(std::string_view name) {
  if (IsFunctionName(name)) return "";
  return "a function name must match " + std::string(kFunctionNameRule) +
         " (lower-case letters, digits, '_' and '-', starting with a letter or digit)";
}

Status CheckFunctionName(std::string_view name) {
  if (IsFunctionName(name)) return Ok();
  return Fail(ErrorCode::kInvalidArgument,
              "invalid function name '" + std::string(name) + "': " + NameProblem(name));
}

std::string HandlerProblem(Runtime runtime, std::string_view handler) {
  if (handler.size() > kMaxHandlerLength) {
    return "longer than " + std::to_string(kMaxHandlerLength) + " characters";
  }
  switch (runtime) {
    case Runtime::kPython311:
      return PythonHandlerProblem(handler);
    case Runtime::kNative:
      return NativeHandlerProblem(handler);
    case Runtime::kProcess:
      return ProcessHandlerProblem(handler);
  }
  return "unknown runtime";
}

HandlerParts SplitHandler(Runtime runtime, std::string_view handler) {
  HandlerParts parts;
  size_t cut = runtime == Runtime::kNative ? handler.rfind(':') : handler.rfind('.');
  if (runtime == Runtime::kProcess || cut == std::string_view::npos) {
    parts.file = std::string(handler);
    return parts;
  }
  parts.file = std::string(handler.substr(0, cut));
  parts.symbol = std::string(handler.substr(cut + 1));
  return parts;
}

std::string ImageProblem(std::string_view image) {
  if (image::ValidateImageName(image)) return "";
  return "not an image name (a name must match " + std::string(image::kNameRule) + ")";
}

std::string MemoryProblem(uint64_t bytes) {
  if (bytes >= kMinMemoryBytes) return "";
  return "must be at least 16MiB";
}

std::string CpusProblem(double cpus) {
  if (std::isfinite(cpus) && cpus >= kMinCpus && cpus <= kMaxCpus) return "";
  return "must be a number of CPUs from 0.01 to 64, such as 0.5 or 2";
}

std::string PidsProblem(int64_t pids) {
  if (pids >= kMinPids && pids <= kMaxPids) return "";
  return Range(kMinPids, kMaxPids) + " (processes and threads the function may have)";
}

std::string TimeoutProblem(std::chrono::milliseconds timeout) {
  if (timeout >= kMinTimeout && timeout <= kMaxTimeout) return "";
  return "must be from 1ms to 15m, such as \"3s\", \"500ms\" or 30 (seconds)";
}

std::string EnvKeyProblem(std::string_view key) {
  if (!IsIdentifier(key)) {
    return "not an environment variable name (letters, digits and '_', not starting with a digit)";
  }
  if (key.starts_with("EMBER_")) return "EMBER_* variables are reserved for ember itself";
  return "";
}

std::string EnvValueProblem(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) return "the value contains a NUL byte";
  if (value.size() > kMaxEnvValueLength) {
    return "the value is longer than " + std::to_string(kMaxEnvValueLength) + " bytes";
  }
  return "";
}

std::string ConcurrencyProblem(int64_t concurrency) {
  if (concurrency >= 1 && concurrency <= kMaxConcurrency) return "";
  return Range(1, kMaxConcurrency) + " (invocations one instance serves at once)";
}

std::string KeepAliveProblem(std::chrono::milliseconds keep_alive) {
  if (keep_alive.count() >= 0 && keep_alive <= kMaxKeepAlive) return "";
  return "must be from 0s to 24h, such as \"60s\" or \"10m\"";
}

std::string MaxInstancesProblem(int64_t max_instances) {
  if (max_instances >= 1 && max_instances <= kMaxMaxInstances) return "";
  return Range(1, kMaxMaxInstances);
}

std::optional<Runtime> ParseRuntime(std::string_view text) {
  for (Runtime r : {Runtime::kPython311, Runtime::kNative, Runtime::kProcess}) {
    if (text == RuntimeName(r)) return r;
  }
  return std::nullopt;
}

std::optional<sandbox::NetworkMode> ParseNetwork(std::string_view text) {
  for (auto mode : {sandbox::NetworkMode::kNone, sandbox::NetworkMode::kLoopback}) {
    if (text == NetworkName(mode)) return mode;
  }
  return std::nullopt;
}

std::optional<TemplatePolicy> ParseTemplatePolicy(std::string_view text) {
  for (auto policy :
       {TemplatePolicy::kOnDeploy, TemplatePolicy::kOnFirstInvoke, TemplatePolicy::kNone}) {
    if (text == TemplatePolicyName(policy)) return policy;
  }
  return std::nullopt;
}

const char* TemplatePolicyName(TemplatePolicy policy) {
  switch (policy) {
    case TemplatePolicy::kOnDeploy:
      return "deploy";
    case TemplatePolicy::kOnFirstInvoke:
      return "first-invoke";
    case TemplatePolicy::kNone:
      return "none";
  }
  return "deploy";
}

std::optional<SnapshotPolicy> ParseSnapshotPolicy(std::string_view text) {
  for (auto policy : {SnapshotPolicy::kNone, SnapshotPolicy::kOnDeploy}) {
    if (text == SnapshotPolicyName(policy)) return policy;
  }
  return std::nullopt;
}

const char* SnapshotPolicyName(SnapshotPolicy policy) {
  return policy == SnapshotPolicy::kOnDeploy ? "deploy" : "none";
}

const char* NetworkName(sandbox::NetworkMode mode) {
  return mode == sandbox::NetworkMode::kNone ? "none" : "loopback";
}

Status ValidateManifest(const Manifest& m, std::string_view source) {
  using nlohmann::json;
  std::string problem;
  std::string field;
  json value;
  auto check = [&](std::string_view name, json shown, std::string why) {
    if (!problem.empty() || why.empty()) return;
    field = name;
    value = std::move(shown);
    problem = std::move(why);
  };
  check("name", m.name, NameProblem(m.name));
  check("handler", m.handler, HandlerProblem(m.runtime, m.handler));
  check("image", m.image, ImageProblem(m.image));
  check("memory", m.memory_bytes, MemoryProblem(m.memory_bytes));
  check("cpus", m.cpus, CpusProblem(m.cpus));
  check("pids", m.pids, PidsProblem(static_cast<int64_t>(std::min<uint64_t>(m.pids, INT64_MAX))));
  check("timeout", m.timeout.count(), TimeoutProblem(m.timeout));
  if (m.env.size() > kMaxEnvEntries) {
    check("env", m.env.size(), "more than " + std::to_string(kMaxEnvEntries) + " variables");
  }
  for (const auto& [key, val] : m.env) {
    check("env." + key, val, EnvKeyProblem(key));
    check("env." + key, val, EnvValueProblem(val));
  }
  check("concurrency", m.concurrency, ConcurrencyProblem(m.concurrency));
  check("keep_alive", m.keep_alive.count(), KeepAliveProblem(m.keep_alive));
  check("max_instances", m.max_instances, MaxInstancesProblem(m.max_instances));
  if (m.warmup && !json::accept(*m.warmup)) check("warmup", *m.warmup, "not JSON text");
  if (problem.empty()) return Ok();
  return Fail(ErrorCode::kInvalidArgument,
              std::string(source) + ": " + field + " = " +
                  value.dump(-1, ' ', false, json::error_handler_t::replace) + ": " + problem);
}

}  // namespace ember::engine::rules
