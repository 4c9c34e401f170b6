// ember.toml -> Manifest. toml++ parses (exceptions off: parse() returns a parse_result); each
// field is then read with its type and range checked here, so every error can show the value as
// the user wrote it.
#include "engine/manifest.h"

#include <toml++/toml.h>

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/units.h"
#include "engine/manifest_rules.h"

namespace ember::engine {
namespace {

using nlohmann::ordered_json;

constexpr std::array<std::string_view, 16> kKnownKeys = {
    "name",   "runtime", "handler",  "image",       "memory",     "cpus",
    "pids",   "timeout", "env",      "concurrency", "keep_alive", "max_instances",
    "warmup", "network", "template", "snapshot"};
constexpr size_t kMaxManifestBytes = 64 << 10;

std::string Render(const toml::node& node) {
  if (const auto* s = node.as_string())
    return ordered_json(s->get()).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  std::ostringstream out;
  node.visit([&](const auto& value) { out << value; });
  std::string text = out.str();
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// Edit distance, for "did you mean" on unknown keys.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Reads the fields of one parsed ember.toml; the first error stops it.
class FieldReader {
 public:
  FieldReader(const toml::table& table, std::string_view source) : table_(table), source_(source) {}

  Error Invalid(std::string_view key, const toml::node& value, std::string_view why) const {
    return Error(ErrorCode::kInvalidArgument, std::string(source_) + ": " + std::string(key) +
                                                  " = " + Render(value) + ": " + std::string(why));
  }

  Status CheckKeys() const {
    for (const auto& [key, value] : table_) {
      std::string_view name = key.str();
      bool known = false;
      for (auto k : kKnownKeys) known = known || k == name;
      if (known) continue;
      std::string message = std::string(source_) + ": unknown key '" + std::string(name) + "'";
      for (auto k : kKnownKeys) {
        if (Distance(name, k) <= 2) {
          message += " (did you mean '" + std::string(k) + "'?)";
          break;
        }
      }
      message += "; known keys: ";
      for (size_t i = 0; i < kKnownKeys.size(); ++i) {
        message += (i == 0 ? "" : ", ") + std::string(kKnownKeys[i]);
      }
      return Fail(ErrorCode::kInvalidArgument, message);
    }
    return Ok();
  }

  const toml::node* Find(std::string_view key) const { return table_.get(key); }

  Result<std::optional<std::string>> String(std::string_view key, std::string_view example) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return std::optional<std::string>();
    if (!node->is_string())
      return Fail(
          Invalid(key, *node,
                  "expected a string, e.g. " + std::string(key) + " = " + std::string(example)));
    return std::optional<std::string>(node->as_string()->get());
  }

  Result<std::string> Required(std::string_view key, std::string_view example) const {
    EMBER_ASSIGN_OR_RETURN(auto value, String(key, example));
    if (!value) {
      return Fail(ErrorCode::kInvalidArgument, std::string(source_) + ": the required field '" +
                                                   std::string(key) + "' is missing (e.g. " +
                                                   std::string(key) + " = " + std::string(example) +
                                                   ")");
    }
    return *value;
  }

  // An integer checked by `problem` ("" = fine).
  template <typename Check>
  Result<std::optional<int64_t>> Integer(std::string_view key, Check problem) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return std::optional<int64_t>();
    if (!node->is_integer()) return Fail(Invalid(key, *node, problem(-1)));
    int64_t value = node->as_integer()->get();
    if (auto why = problem(value); !why.empty()) return Fail(Invalid(key, *node, why));
    return std::optional<int64_t>(value);
  }

  // A duration: a string with a unit ("3s", "500ms") or a number of seconds. `allow_zero` lets
  // "0s" through, which ParseDuration refuses.
  Result<std::optional<std::chrono::milliseconds>> Duration(std::string_view key,
                                                            bool allow_zero) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return std::optional<std::chrono::milliseconds>();
    constexpr const char* kAllowed =
        "not a duration (use e.g. \"3s\", \"500ms\", \"2m\", or seconds)";
    double ms = 0;
    if (const auto* s = node->as_string()) {
      auto parsed = ParseDuration(s->get());
      if (parsed) {
        ms = static_cast<double>(parsed->count());
      } else if (!(allow_zero && IsZeroDuration(s->get()))) {
        return Fail(Invalid(key, *node, kAllowed));
      }
    } else if (node->is_integer()) {
      ms = static_cast<double>(node->as_integer()->get()) * 1000;
    } else if (node->is_floating_point()) {
      ms = node->as_floating_point()->get() * 1000;
      if (!std::isfinite(ms)) return Fail(Invalid(key, *node, kAllowed));
    } else {
      return Fail(Invalid(key, *node, kAllowed));
    }
    if (ms < 0 || ms > 1e12 || (ms > 0 && ms < 1) || (ms == 0 && !allow_zero)) {
      return Fail(Invalid(key, *node,
                          allow_zero ? rules::KeepAliveProblem(std::chrono::milliseconds(-1))
                                     : rules::TimeoutProblem({})));
    }
    return std::optional<std::chrono::milliseconds>(static_cast<int64_t>(ms));
  }

  std::string_view source() const { return source_; }

 private:
  static bool IsZeroDuration(std::string_view text) {
    for (std::string_view unit : {"ms", "s", "m", "h"}) {
      if (text.ends_with(unit)) {
        text.remove_suffix(unit.size());
        break;
      }
    }
    return !text.empty() && text.find_first_not_of("0.") == std::string_view::npos &&
           text.find_first_of('0') != std::string_view::npos;
  }

  const toml::table& table_;
  std::string_view source_;
};

// A TOML value as JSON. Dates and times become strings in TOML's own notation.
Result<ordered_json> ToJson(const toml::node& node, const FieldReader& reader) {
  if (const auto* table = node.as_table()) {
    ordered_json object = ordered_json::object();
    for (const auto& [key, value] : *table) {
      EMBER_ASSIGN_OR_RETURN(object[std::string(key.str())], ToJson(value, reader));
    }
    return object;
  }
  if (const auto* array = node.as_array()) {
    ordered_json list = ordered_json::array();
    for (const auto& value : *array) {
      EMBER_ASSIGN_OR_RETURN(auto item, ToJson(value, reader));
      list.push_back(std::move(item));
    }
    return list;
  }
  if (const auto* s = node.as_string()) return ordered_json(s->get());
  if (const auto* i = node.as_integer()) return ordered_json(i->get());
  if (const auto* b = node.as_boolean()) return ordered_json(b->get());
  if (const auto* f = node.as_floating_point()) {
    if (!std::isfinite(f->get())) {
      return Fail(reader.Invalid("warmup", node, "JSON has no inf or nan"));
    }
    return ordered_json(f->get());
  }
  std::ostringstream out;
  node.visit([&](const auto& value) { out << value; });
  return ordered_json(out.str());
}

Result<std::string> WarmupJson(const toml::node& node, const FieldReader& reader) {
  if (const auto* s = node.as_string()) {
    // A string holds the event as JSON text: warmup = '{"name": "warm"}'.
    auto parsed = ordered_json::parse(s->get(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      return Fail(reader.Invalid(
          "warmup", node,
          "not JSON text (a string holds the event as JSON, e.g. '{\"name\": \"warm\"}' or "
          "'\"text\"'; or write the event as a table: [warmup] name = \"warm\")"));
    }
    return parsed.dump();
  }
  EMBER_ASSIGN_OR_RETURN(auto json, ToJson(node, reader));
  return json.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

}  // namespace

const char* RuntimeName(Runtime runtime) {
  switch (runtime) {
    case Runtime::kPython311:
      return "python3.11";
    case Runtime::kNative:
      return "native";
    case Runtime::kProcess:
      return "process";
  }
  return "?";
}

Result<Manifest> ParseManifest(std::string_view toml_text, std::string_view source) {
  if (toml_text.size() > kMaxManifestBytes) {
    return Fail(ErrorCode::kInvalidArgument, std::string(source) + " is " +
                                                 std::to_string(toml_text.size()) +
                                                 " bytes: a manifest is at most 64KiB");
  }
  toml::parse_result parsed = toml::parse(toml_text, source);
  if (!parsed) {
    const auto& error = parsed.error();
    return Fail(ErrorCode::kInvalidArgument, std::string(source) + ":" +
                                                 std::to_string(error.source().begin.line) + ":" +
                                                 std::to_string(error.source().begin.column) +
                                                 ": " + std::string(error.description()));
  }
  const toml::table& table = parsed.table();
  FieldReader reader(table, source);
  EMBER_TRY(reader.CheckKeys());
  Manifest m;

  EMBER_ASSIGN_OR_RETURN(m.name, reader.Required("name", "\"hello\""));
  if (auto why = rules::NameProblem(m.name); !why.empty()) {
    return Fail(reader.Invalid("name", *reader.Find("name"), why));
  }
  EMBER_ASSIGN_OR_RETURN(auto runtime, reader.Required("runtime", "\"python3.11\""));
  auto parsed_runtime = rules::ParseRuntime(runtime);
  if (!parsed_runtime) {
    return Fail(reader.Invalid("runtime", *reader.Find("runtime"),
                               "must be \"python3.11\", \"native\" or \"process\""));
  }
  m.runtime = *parsed_runtime;
  EMBER_ASSIGN_OR_RETURN(m.handler, reader.Required("handler", "\"handler.handle\""));
  if (auto why = rules::HandlerProblem(m.runtime, m.handler); !why.empty()) {
    return Fail(reader.Invalid("handler", *reader.Find("handler"), why));
  }
  EMBER_ASSIGN_OR_RETURN(auto image, reader.String("image", "\"python3.11\""));
  if (image) {
    if (auto why = rules::ImageProblem(*image); !why.empty()) {
      return Fail(reader.Invalid("image", *reader.Find("image"), why));
    }
    m.image = *image;
  }

  if (const toml::node* node = reader.Find("memory")) {
    constexpr const char* kNotSize = "not a size (use e.g. 128MiB, 1G, or a number of bytes)";
    if (const auto* s = node->as_string()) {
      auto bytes = ParseSize(s->get());
      if (!bytes) return Fail(reader.Invalid("memory", *node, kNotSize));
      m.memory_bytes = *bytes;
    } else if (const auto* i = node->as_integer(); i != nullptr && i->get() > 0) {
      m.memory_bytes = static_cast<uint64_t>(i->get());
    } else {
      return Fail(reader.Invalid("memory", *node, kNotSize));
    }
    if (auto why = rules::MemoryProblem(m.memory_bytes); !why.empty()) {
      return Fail(reader.Invalid("memory", *node, why));
    }
  }
  if (const toml::node* node = reader.Find("cpus")) {
    double cpus = -1;
    if (const auto* f = node->as_floating_point()) cpus = f->get();
    if (const auto* i = node->as_integer()) cpus = static_cast<double>(i->get());
    if (auto why = rules::CpusProblem(cpus); !why.empty()) {
      return Fail(reader.Invalid("cpus", *node, why));
    }
    m.cpus = cpus;
  }
  EMBER_ASSIGN_OR_RETURN(auto pids, reader.Integer("pids", rules::PidsProblem));
  if (pids) m.pids = static_cast<uint64_t>(*pids);
  EMBER_ASSIGN_OR_RETURN(auto timeout, reader.Duration("timeout", /*allow_zero=*/false));
  if (timeout) {
    if (auto why = rules::TimeoutProblem(*timeout); !why.empty()) {
      return Fail(reader.Invalid("timeout", *reader.Find("timeout"), why));
    }
    m.timeout = *timeout;
  }
  if (const toml::node* node = reader.Find("env")) {
    const toml::table* env = node->as_table();
    if (env == nullptr) {
      return Fail(reader.Invalid("env", *node,
                                 "expected a table of strings, e.g. env = { GREETING = \"hi\" }"));
    }
    if (env->size() > rules::kMaxEnvEntries) {
      return Fail(reader.Invalid("env", *node, "more than 256 variables"));
    }
    for (const auto& [key, value] : *env) {
      std::string field = "env." + std::string(key.str());
      std::string why = rules::EnvKeyProblem(key.str());
      if (why.empty() && !value.is_string()) {
        why = "values are strings (quote numbers and booleans: \"1\", \"true\")";
      }
      if (why.empty()) why = rules::EnvValueProblem(value.as_string()->get());
      if (!why.empty()) return Fail(reader.Invalid(field, value, why));
      m.env.emplace(std::string(key.str()), value.as_string()->get());
    }
  }
  EMBER_ASSIGN_OR_RETURN(auto network, reader.String("network", "\"none\""));
  if (network) {
    auto mode = rules::ParseNetwork(*network);
    if (!mode) {
      return Fail(
          reader.Invalid("network", *reader.Find("network"),
                         "must be \"none\" (no interface at all) or \"loopback\" (lo only)"));
    }
    m.network = *mode;
  }
  EMBER_ASSIGN_OR_RETURN(auto policy, reader.String("template", "\"deploy\""));
  if (policy) {
    auto parsed = rules::ParseTemplatePolicy(*policy);
    if (!parsed) {
      return Fail(reader.Invalid("template", *reader.Find("template"),
                                 "must be \"deploy\" (build the fork-boot template at deploy), "
                                 "\"first-invoke\" or \"none\""));
    }
    m.template_policy = *parsed;
  }
  EMBER_ASSIGN_OR_RETURN(auto snapshot, reader.String("snapshot", "\"none\""));
  if (snapshot) {
    auto parsed = rules::ParseSnapshotPolicy(*snapshot);
    if (!parsed) {
      return Fail(reader.Invalid("snapshot", *reader.Find("snapshot"),
                                 "must be \"deploy\" (take the snapshot for cold and warm boot "
                                 "at deploy) or \"none\""));
    }
    m.snapshot_policy = *parsed;
  }
  EMBER_ASSIGN_OR_RETURN(auto concurrency,
                         reader.Integer("concurrency", rules::ConcurrencyProblem));
  if (concurrency) m.concurrency = static_cast<uint32_t>(*concurrency);
  EMBER_ASSIGN_OR_RETURN(auto keep_alive, reader.Duration("keep_alive", /*allow_zero=*/true));
  if (keep_alive) {
    if (auto why = rules::KeepAliveProblem(*keep_alive); !why.empty()) {
      return Fail(reader.Invalid("keep_alive", *reader.Find("keep_alive"), why));
    }
    m.keep_alive = *keep_alive;
  }
  EMBER_ASSIGN_OR_RETURN(auto max_instances,
                         reader.Integer("max_instances", rules::MaxInstancesProblem));
  if (max_instances) m.max_instances = static_cast<uint32_t>(*max_instances);
  if (const toml::node* node = reader.Find("warmup")) {
    EMBER_ASSIGN_OR_RETURN(m.warmup, WarmupJson(*node, reader));
  }
  return m;
}

}  // namespace ember::engine
