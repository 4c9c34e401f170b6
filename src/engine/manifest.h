// A function's manifest: the `ember.toml` at the root of a function bundle, parsed with toml++
// and validated field by field. Every error names the field, the value and what is allowed:
//   "ember.toml: memory = \"12XB\": not a size (use e.g. 128MiB, 1G)"
// The parsed manifest is stored by the daemon as JSON (ToJson/FromJson round-trip exactly).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "sandbox/spec.h"

namespace ember::engine {

enum class Runtime { kPython311, kNative, kProcess };

// When the daemon builds the function's fork-boot template (`template` in ember.toml).
enum class TemplatePolicy {
  kOnDeploy,       // "deploy": right after a deploy (and when the daemon starts)
  kOnFirstInvoke,  // "first-invoke": when the function is first invoked
  kNone,           // "none": never; instances boot plain
};
// When the daemon takes the function's snapshot for cold and warm boot (`snapshot` in ember.toml).
enum class SnapshotPolicy {
  kNone,      // "none": only when asked (`ember snapshot NAME`)
  kOnDeploy,  // "deploy": right after a deploy (and when the daemon starts without one)
};
const char* RuntimeName(Runtime runtime);  // "python3.11", "native", "process"

struct Manifest {
  std::string name;  // [a-z0-9][a-z0-9_-]{0,62}
  Runtime runtime = Runtime::kPython311;
  std::string handler;  // python: "module.func"; native: "lib.so:symbol"; process: a command
  std::string image = "python3.11";  // an image name in the store
  uint64_t memory_bytes = 128ULL << 20;
  double cpus = 1.0;
  uint64_t pids = 64;
  std::chrono::milliseconds timeout{3000};  // per invocation
  std::map<std::string, std::string> env;
  sandbox::NetworkMode network = sandbox::NetworkMode::kLoopback;
  uint32_t concurrency = 1;                     // invocations one instance serves at once
  std::chrono::milliseconds keep_alive{60000};  // an idle instance lives this long
  uint32_t max_instances = 10;
  std::optional<std::string> warmup;  // JSON event invoked once after init (compact JSON text)
  TemplatePolicy template_policy = TemplatePolicy::kOnDeploy;
  SnapshotPolicy snapshot_policy = SnapshotPolicy::kNone;
};

// Parses and validates the text of an ember.toml. `source` names it in errors.
Result<Manifest> ParseManifest(std::string_view toml_text, std::string_view source = "ember.toml");
// Reads DIR/ember.toml and checks that the handler's file exists in DIR (python: module.py or
// module/__init__.py; native: the .so; process: the command's first word when it is a relative
// path).
Result<Manifest> LoadBundleManifest(const std::string& dir);
// The same, naming the bundle `shown` in errors instead of `dir` (the daemon says "the bundle":
// its path is a staging directory the client never saw).
Result<Manifest> LoadBundleManifest(const std::string& dir, std::string_view shown);

std::string ManifestToJson(const Manifest& manifest);
Result<Manifest> ManifestFromJson(std::string_view json);

}  // namespace ember::engine
