// Manifest <-> the JSON the function store keeps next to the code (manifest.json). Every field is
// written, defaults included, so a stored manifest never depends on the defaults of a later ember.
// Reading checks types and then the same rules as ember.toml (a stored manifest is data that may
// have been damaged; errors are kCorrupt).
#include <nlohmann/json.hpp>

#include "engine/manifest.h"
#include "engine/manifest_rules.h"

namespace ember::engine {
namespace {

using nlohmann::ordered_json;
constexpr int kFormatVersion = 1;

Error Corrupt(const std::string& why) {
  return Error(ErrorCode::kCorrupt, "stored manifest: " + why);
}

// Typed access that never throws (nlohmann's get<> does on a type mismatch).
class JsonFields {
 public:
  explicit JsonFields(const ordered_json& doc) : doc_(doc) {}

  Result<const ordered_json*> Field(const char* key, ordered_json::value_t type) const {
    auto it = doc_.find(key);
    if (it == doc_.end()) return Fail(Corrupt(std::string("no \"") + key + "\""));
    bool ok = it->type() == type ||
              (type == ordered_json::value_t::number_float && it->is_number()) ||
              (type == ordered_json::value_t::number_unsigned && it->is_number_unsigned());
    if (!ok) return Fail(Corrupt(std::string("\"") + key + "\" has the wrong type"));
    return &*it;
  }
  Result<std::string> String(const char* key) const {
    EMBER_ASSIGN_OR_RETURN(auto node, Field(key, ordered_json::value_t::string));
    return node->get<std::string>();
  }
  Result<uint64_t> Unsigned(const char* key) const {
    EMBER_ASSIGN_OR_RETURN(auto node, Field(key, ordered_json::value_t::number_unsigned));
    return node->get<uint64_t>();
  }
  Result<uint32_t> Small(const char* key) const {
    EMBER_ASSIGN_OR_RETURN(uint64_t value, Unsigned(key));
    if (value > UINT32_MAX) return Fail(Corrupt(std::string("\"") + key + "\" is out of range"));
    return static_cast<uint32_t>(value);
  }

 private:
  const ordered_json& doc_;
};

}  // namespace

std::string ManifestToJson(const Manifest& m) {
  ordered_json env = ordered_json::object();
  for (const auto& [key, value] : m.env) env[key] = value;
  ordered_json doc = {
      {"format", kFormatVersion},
      {"name", m.name},
      {"runtime", RuntimeName(m.runtime)},
      {"handler", m.handler},
      {"image", m.image},
      {"memory_bytes", m.memory_bytes},
      {"cpus", m.cpus},
      {"pids", m.pids},
      {"timeout_ms", m.timeout.count()},
      {"env", std::move(env)},
      {"network", rules::NetworkName(m.network)},
      {"template", rules::TemplatePolicyName(m.template_policy)},
      {"snapshot", rules::SnapshotPolicyName(m.snapshot_policy)},
      {"concurrency", m.concurrency},
      {"keep_alive_ms", m.keep_alive.count()},
      {"max_instances", m.max_instances},
  };
  // The warmup event stays JSON text inside a string, so it comes back byte for byte.
  doc["warmup"] = m.warmup ? ordered_json(*m.warmup) : ordered_json(nullptr);
  return doc.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

Result<Manifest> ManifestFromJson(std::string_view json) {
  auto doc = ordered_json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Fail(Corrupt("not a JSON object"));
  JsonFields fields(doc);
  EMBER_ASSIGN_OR_RETURN(uint64_t format, fields.Unsigned("format"));
  if (format != kFormatVersion) {
    return Fail(Corrupt("format " + std::to_string(format) + " is not " +
                        std::to_string(kFormatVersion) + " (written by another ember version)"));
  }
  Manifest m;
  EMBER_ASSIGN_OR_RETURN(m.name, fields.String("name"));
  EMBER_ASSIGN_OR_RETURN(auto runtime, fields.String("runtime"));
  auto parsed_runtime = rules::ParseRuntime(runtime);
  if (!parsed_runtime) return Fail(Corrupt("unknown runtime \"" + runtime + "\""));
  m.runtime = *parsed_runtime;
  EMBER_ASSIGN_OR_RETURN(m.handler, fields.String("handler"));
  EMBER_ASSIGN_OR_RETURN(m.image, fields.String("image"));
  EMBER_ASSIGN_OR_RETURN(m.memory_bytes, fields.Unsigned("memory_bytes"));
  EMBER_ASSIGN_OR_RETURN(auto cpus, fields.Field("cpus", ordered_json::value_t::number_float));
  m.cpus = cpus->get<double>();
  EMBER_ASSIGN_OR_RETURN(m.pids, fields.Unsigned("pids"));
  EMBER_ASSIGN_OR_RETURN(auto timeout, fields.Unsigned("timeout_ms"));
  m.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(std::min<uint64_t>(timeout, 1ULL << 50)));
  EMBER_ASSIGN_OR_RETURN(auto env, fields.Field("env", ordered_json::value_t::object));
  for (const auto& [key, value] : env->items()) {
    if (!value.is_string()) return Fail(Corrupt("env value of " + key + " is not a string"));
    m.env.emplace(key, value.get<std::string>());
  }
  EMBER_ASSIGN_OR_RETURN(auto network, fields.String("network"));
  auto mode = rules::ParseNetwork(network);
  if (!mode) return Fail(Corrupt("unknown network \"" + network + "\""));
  m.network = *mode;
  // Absent in manifests stored before fork boot existed: the default.
  if (auto policy = doc.find("template"); policy != doc.end()) {
    auto parsed =
        policy->is_string() ? rules::ParseTemplatePolicy(policy->get<std::string>()) : std::nullopt;
    if (!parsed) return Fail(Corrupt("unknown template policy " + policy->dump()));
    m.template_policy = *parsed;
  }
  // Absent in manifests stored before snapshots existed: the default.
  if (auto policy = doc.find("snapshot"); policy != doc.end()) {
    auto parsed =
        policy->is_string() ? rules::ParseSnapshotPolicy(policy->get<std::string>()) : std::nullopt;
    if (!parsed) return Fail(Corrupt("unknown snapshot policy " + policy->dump()));
    m.snapshot_policy = *parsed;
  }
  EMBER_ASSIGN_OR_RETURN(m.concurrency, fields.Small("concurrency"));
  EMBER_ASSIGN_OR_RETURN(auto keep_alive, fields.Unsigned("keep_alive_ms"));
  m.keep_alive =
      std::chrono::milliseconds(static_cast<int64_t>(std::min<uint64_t>(keep_alive, 1ULL << 50)));
  EMBER_ASSIGN_OR_RETURN(m.max_instances, fields.Small("max_instances"));
  auto warmup = doc.find("warmup");
  if (warmup == doc.end()) return Fail(Corrupt("no \"warmup\""));
  if (warmup->is_string()) {
    m.warmup = warmup->get<std::string>();
  } else if (!warmup->is_null()) {
    return Fail(Corrupt("\"warmup\" is neither JSON text nor null"));
  }
  auto valid = rules::ValidateManifest(m, "stored manifest");
  if (!valid) return Fail(Error(ErrorCode::kCorrupt, valid.error().message()));
  return m;
}

}  // namespace ember::engine
