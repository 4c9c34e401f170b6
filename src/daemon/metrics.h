// A small metrics registry that renders the Prometheus text exposition format 0.0.4 (what
// `GET /metrics` serves). prometheus-cpp is not packaged in Debian 12, and the daemon needs only
// counters, gauges and fixed-bucket histograms, used from its one io thread (no locking).
//
//   MetricsRegistry registry;
//   auto& invocations = registry.AddCounter("ember_invocations_total", "Invocations finished.");
//   Counter& ok = invocations.With({{"function", "hello"}, {"outcome", "ok"}});  // keep this
//   ok.Inc();                                                                    // a plain add
//
// A metric returned by With() lives as long as the registry (or until Remove), so hot paths
// hold the reference and never look up labels again. Output is stable: families sorted by name,
// series by their label values (labels sorted by name), histogram buckets in ascending order.
// Metric and label names are constants chosen in code; they are checked with assert.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ember::daemon {

// Label pairs {name, value}; order does not matter (they are sorted by name).
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double by = 1) { value_ += by; }  // `by` must not be negative
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Gauge {
 public:
  void Set(double value) { value_ = value; }
  void Inc(double by = 1) { value_ += by; }
  void Dec(double by = 1) { value_ -= by; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending, without +Inf (added when rendered).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations per bucket, not cumulative; the last entry counts those above every bound.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Latency buckets in seconds, from 100 µs (a fork boot) to 30 s (a long invocation).
const std::vector<double>& DefaultLatencyBuckets();

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, const char* type)
      : name_(std::move(name)), help_(std::move(help)), type_(type) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const char* type() const { return type_; }
  // Appends the HELP and TYPE lines and every series.
  void Render(std::string* out) const;

 protected:
  static Labels Canonical(Labels labels);
  virtual void RenderSeries(std::string* out) const = 0;

 private:
  std::string name_;
  std::string help_;
  const char* type_;
};

template <typename Metric>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;
  Family(std::string name, std::string help, const char* type, std::vector<double> bounds)
      : FamilyBase(std::move(name), std::move(help), type), bounds_(std::move(bounds)) {}

  // The series with these labels, created (at zero) on first use.
  Metric& With(Labels labels = {});
  // Drops a series (a deleted function's), so it is no longer exported.
  void Remove(Labels labels) { series_.erase(Canonical(std::move(labels))); }
  size_t size() const { return series_.size(); }

 private:
  void RenderSeries(std::string* out) const override;

  std::vector<double> bounds_;  // histograms only
  std::map<Labels, std::unique_ptr<Metric>> series_;
};

class MetricsRegistry {
 public:
  // Registering a name again returns the existing family (it must be of the same type).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help);
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help);
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds = DefaultLatencyBuckets());

  // Runs before every Render: for gauges that mirror state kept elsewhere (instances per state).
  void AddCollector(std::function<void()> collector);

  // The text exposition format; serve it as "text/plain; version=0.0.4; charset=utf-8".
  std::string Render();

 private:
  std::map<std::string, std::unique_ptr<FamilyBase>> families_;
  std::vector<std::function<void()>> collectors_;
};

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Helpers the renderer uses, exposed for tests: a sample value as Prometheus writes it ("1",
// "0.25", "+Inf", "NaN"), and a label value escaped (\\, \", \n).
std::string FormatSampleValue(double value);
std::string EscapeLabelValue(const std::string& value);

}  // namespace ember::daemon
