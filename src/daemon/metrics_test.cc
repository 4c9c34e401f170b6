#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace ember::daemon {
namespace {

TEST(MetricsTest, CountersAndGaugesRenderSortedWithHelpAndType) {
  MetricsRegistry registry;
  auto& invocations = registry.AddCounter("ember_invocations_total", "Invocations finished.");
  auto& instances = registry.AddGauge("ember_instances", "Instances by state.");
  invocations.With({{"outcome", "ok"}, {"function", "hello"}}).Inc();
  Counter& errors = invocations.With({{"function", "hello"}, {"outcome", "error"}});
  errors.Inc(2);
  invocations.With({{"function", "hello"}, {"outcome", "ok"}}).Inc();
  instances.With({{"state", "idle"}}).Set(3);
  instances.With({{"state", "busy"}}).Set(1.5);
  instances.With({{"state", "busy"}}).Dec(0.5);

  EXPECT_EQ(registry.Render(),
            "# HELP ember_instances Instances by state.\n"
            "# TYPE ember_instances gauge\n"
            "ember_instances{state=\"busy\"} 1\n"
            "ember_instances{state=\"idle\"} 3\n"
            "# HELP ember_invocations_total Invocations finished.\n"
            "# TYPE ember_invocations_total counter\n"
            "ember_invocations_total{function=\"hello\",outcome=\"error\"} 2\n"
            "ember_invocations_total{function=\"hello\",outcome=\"ok\"} 2\n");
}

TEST(MetricsTest, SeriesWithoutLabelsAndRegisteringTwice) {
  MetricsRegistry registry;
  registry.AddCounter("ember_requests_total", "HTTP requests.").With().Inc(7);
  // The same name returns the same family: counts continue.
  registry.AddCounter("ember_requests_total", "HTTP requests.").With().Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP ember_requests_total HTTP requests.\n"
            "# TYPE ember_requests_total counter\n"
            "ember_requests_total 8\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry registry;
  auto& latency = registry.AddHistogram("ember_boot_seconds", "Boot latency.", {0.001, 0.01, 0.1});
  Histogram& fork = latency.With({{"mode", "fork"}});
  fork.Observe(0.0005);
  fork.Observe(0.001);  // on the bound: counted in le="0.001"
  fork.Observe(0.05);
  fork.Observe(2);
  EXPECT_EQ(registry.Render(),
            "# HELP ember_boot_seconds Boot latency.\n"
            "# TYPE ember_boot_seconds histogram\n"
            "ember_boot_seconds_bucket{mode=\"fork\",le=\"0.001\"} 2\n"
            "ember_boot_seconds_bucket{mode=\"fork\",le=\"0.01\"} 2\n"
            "ember_boot_seconds_bucket{mode=\"fork\",le=\"0.1\"} 3\n"
            "ember_boot_seconds_bucket{mode=\"fork\",le=\"+Inf\"} 4\n"
            "ember_boot_seconds_sum{mode=\"fork\"} 2.0515\n"
            "ember_boot_seconds_count{mode=\"fork\"} 4\n");
}

TEST(MetricsTest, HistogramWithoutLabels) {
  MetricsRegistry registry;
  registry.AddHistogram("h", "x", {1}).With().Observe(0.5);
  EXPECT_EQ(registry.Render(),
            "# HELP h x\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddGauge("g", "line one\nback\\slash \"quoted\"")
      .With({{"path", "C:\\dir\n\"x\""}})
      .Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP g line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

TEST(MetricsTest, SampleValues) {
  EXPECT_EQ(FormatSampleValue(0), "0");
  EXPECT_EQ(FormatSampleValue(42), "42");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(-1.5), "-1.5");
  EXPECT_EQ(FormatSampleValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatSampleValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatSampleValue(std::nan("")), "NaN");
}

TEST(MetricsTest, CollectorsRunBeforeRenderAndRemoveDropsASeries) {
  MetricsRegistry registry;
  auto& functions = registry.AddGauge("ember_functions", "Deployed functions.");
  int deployed = 0;
  registry.AddCollector([&] { functions.With().Set(deployed); });
  deployed = 4;
  EXPECT_NE(registry.Render().find("ember_functions 4\n"), std::string::npos);
  auto& calls = registry.AddCounter("c", "calls");
  calls.With({{"function", "a"}}).Inc();
  calls.With({{"function", "b"}}).Inc();
  calls.Remove({{"function", "a"}});
  EXPECT_EQ(calls.size(), 1u);
  std::string text = registry.Render();
  EXPECT_EQ(text.find("function=\"a\""), std::string::npos);
  EXPECT_NE(text.find("c{function=\"b\"} 1\n"), std::string::npos);
}

TEST(MetricsTest, ReferencesStayValidAsSeriesAreAdded) {
  MetricsRegistry registry;
  auto& family = registry.AddCounter("c", "calls");
  Counter& first = family.With({{"function", "m"}});
  for (int i = 0; i < 100; ++i) family.With({{"function", "f" + std::to_string(i)}});
  first.Inc();
  EXPECT_EQ(family.With({{"function", "m"}}).value(), 1);
}

}  // namespace
}  // namespace ember::daemon
