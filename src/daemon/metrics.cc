#include "daemon/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace ember::daemon {
namespace {

[[maybe_unused]] bool ValidName(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `{a="1",b="2"}`, with `extra` (a histogram's le) last; "" when there are no labels at all.
std::string LabelText(const Labels& labels, const std::pair<std::string, std::string>* extra) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  bool first = true;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!first) out.push_back(',');
    first = false;
    out.append(name).append("=\"").append(EscapeLabelValue(value)).push_back('"');
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (extra != nullptr) add(extra->first, extra->second);
  out.push_back('}');
  return out;
}

void AppendSample(std::string* out, const std::string& name, const std::string& labels,
                  double value) {
  out->append(name).append(labels).append(" ").append(FormatSampleValue(value)).push_back('\n');
}

}  // namespace

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10,    30};
  return kBuckets;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::Observe(double value) {
  // lower_bound, so that a value equal to a bound counts in that bucket (le: less or equal).
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void FamilyBase::Render(std::string* out) const {
  out->append("# HELP ").append(name_).append(" ").append(EscapeHelp(help_)).push_back('\n');
  out->append("# TYPE ").append(name_).append(" ").append(type_).push_back('\n');
  RenderSeries(out);
}

Labels FamilyBase::Canonical(Labels labels) {
  std::sort(labels.begin(), labels.end());
  for ([[maybe_unused]] const auto& label : labels) {
    assert(ValidName(label.first, false) && label.first != "le");
  }
  return labels;
}

template <typename Metric>
Metric& Family<Metric>::With(Labels labels) {
  Labels key = Canonical(std::move(labels));
  auto it = series_.find(key);
  if (it != series_.end()) return *it->second;
  std::unique_ptr<Metric> metric;
  if constexpr (std::is_same_v<Metric, Histogram>) {
    metric = std::make_unique<Histogram>(bounds_);
  } else {
    metric = std::make_unique<Metric>();
  }
  return *series_.emplace(std::move(key), std::move(metric)).first->second;
}

template <>
void Family<Counter>::RenderSeries(std::string* out) const {
  for (const auto& [labels, counter] : series_) {
    AppendSample(out, name(), LabelText(labels, nullptr), counter->value());
  }
}

template <>
void Family<Gauge>::RenderSeries(std::string* out) const {
  for (const auto& [labels, gauge] : series_) {
    AppendSample(out, name(), LabelText(labels, nullptr), gauge->value());
  }
}

template <>
void Family<Histogram>::RenderSeries(std::string* out) const {
  for (const auto& [labels, histogram] : series_) {
    uint64_t cumulative = 0;
    const auto& bounds = histogram->bounds();
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += histogram->counts()[i];
      std::pair<std::string, std::string> le{
          "le", i < bounds.size() ? FormatSampleValue(bounds[i]) : "+Inf"};
      AppendSample(out, name() + "_bucket", LabelText(labels, &le),
                   static_cast<double>(cumulative));
    }
    std::string label_text = LabelText(labels, nullptr);
    AppendSample(out, name() + "_sum", label_text, histogram->sum());
    AppendSample(out, name() + "_count", label_text, static_cast<double>(histogram->count()));
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {

template <typename Metric, typename... Extra>
Family<Metric>& Register(std::map<std::string, std::unique_ptr<FamilyBase>>& families,
                         const std::string& name, const std::string& help, const char* type,
                         Extra&&... extra) {
  assert(ValidName(name, true));
  auto it = families.find(name);
  if (it == families.end()) {
    it = families
             .emplace(name, std::make_unique<Family<Metric>>(name, help, type,
                                                             std::forward<Extra>(extra)...))
             .first;
  }
  assert(std::string_view(it->second->type()) == type);
  return static_cast<Family<Metric>&>(*it->second);
}

}  // namespace

Family<Counter>& MetricsRegistry::AddCounter(const std::string& name, const std::string& help) {
  return Register<Counter>(families_, name, help, "counter");
}

Family<Gauge>& MetricsRegistry::AddGauge(const std::string& name, const std::string& help) {
  return Register<Gauge>(families_, name, help, "gauge");
}

Family<Histogram>& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                                 std::vector<double> bounds) {
  return Register<Histogram>(families_, name, help, "histogram", std::move(bounds));
}

void MetricsRegistry::AddCollector(std::function<void()> collector) {
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() {
  for (const auto& collect : collectors_) collect();
  std::string out;
  for (const auto& [name, family] : families_) family->Render(&out);
  return out;
}

}  // namespace ember::daemon
