#include "base/units.h"

#include <sys/random.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>

namespace ember {
namespace {

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

// Splits "12.5ms" into a number and a suffix; fails if there are no digits.
bool SplitNumber(std::string_view text, double* number, std::string_view* suffix) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  if (i == 0) return false;
  std::string digits(text.substr(0, i));
  char* end = nullptr;
  *number = std::strtod(digits.c_str(), &end);
  if (end != digits.c_str() + digits.size() || !std::isfinite(*number)) return false;
  *suffix = text.substr(i);
  return true;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text, std::string_view what) {
  auto invalid = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid " + std::string(what) + " " + Quote(text) + ": " + why);
  };
  constexpr const char* kAllowed =
      "use a positive number with an optional K, M, G or T suffix (powers of 1024), such as 128M";
  double number = 0;
  std::string_view suffix;
  if (text.empty() || !SplitNumber(text, &number, &suffix)) return invalid(kAllowed);
  // The unit is one of K, M, G, T (or none), optionally followed by "i", "B" or "iB".
  std::string unit(suffix);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (std::string_view tail : {"IB", "B", "I"}) {
    if (unit.size() > tail.size() && unit.ends_with(tail)) {
      unit.resize(unit.size() - tail.size());
      break;
    }
  }
  if (unit == "B") unit.clear();
  static constexpr std::string_view kUnits = "KMGT";
  uint64_t multiplier = 1;
  if (!unit.empty()) {
    size_t index = unit.size() == 1 ? kUnits.find(unit[0]) : std::string_view::npos;
    if (index == std::string_view::npos) return invalid(kAllowed);
    multiplier = 1ULL << (10 * (index + 1));
  }
  double bytes = number * static_cast<double>(multiplier);
  if (bytes < 1) return invalid("must be greater than zero");
  if (bytes > 9.0e18) return invalid("too large");
  return static_cast<uint64_t>(bytes);
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text, std::string_view what) {
  auto invalid = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid " + std::string(what) + " " + Quote(text) + ": " + why);
  };
  constexpr const char* kAllowed =
      "use a positive number with a unit ms, s, m or h, such as 10s or 500ms";
  double number = 0;
  std::string_view suffix;
  if (text.empty() || !SplitNumber(text, &number, &suffix)) return invalid(kAllowed);
  double ms_per_unit = 0;
  if (suffix.empty() || suffix == "s") {
    ms_per_unit = 1000;
  } else if (suffix == "ms") {
    ms_per_unit = 1;
  } else if (suffix == "m") {
    ms_per_unit = 60'000;
  } else if (suffix == "h") {
    ms_per_unit = 3'600'000;
  } else {
    return invalid(kAllowed);
  }
  double ms = number * ms_per_unit;
  if (ms < 1) return invalid("must be at least 1ms");
  if (ms > 1e12) return invalid("too large");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<double> ParseCpus(std::string_view text) {
  double number = 0;
  std::string_view suffix;
  if (text.empty() || !SplitNumber(text, &number, &suffix) || !suffix.empty() || number <= 0 ||
      number > 1024) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid cpus " + Quote(text) +
                    ": use a positive number of CPUs up to 1024, such as 0.5 or 2");
  }
  if (number < 0.01) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid cpus " + Quote(text) + ": the smallest CPU share is 0.01");
  }
  return number;
}

Result<uint64_t> ParseCount(std::string_view text, std::string_view what, uint64_t min,
                            uint64_t max) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < min ||
      value > max) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid " + std::string(what) + " " + Quote(text) + ": use a whole number from " +
                    std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

std::string FormatSize(uint64_t bytes) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (value == std::floor(value))
    std::snprintf(buf, sizeof buf, "%.0f%s", value, units[unit]);
  else
    std::snprintf(buf, sizeof buf, "%.1f%s", value, units[unit]);
  return buf;
}

std::string FormatDuration(std::chrono::milliseconds ms) {
  auto count = ms.count();
  if (count % 1000 == 0) return std::to_string(count / 1000) + "s";
  return std::to_string(count) + "ms";
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string RandomHex() {
  // getrandom, not std::random_device: the latter's setup asks the CPU (cpuid) whether it has
  // rdrand, and in a VM every cpuid exits to the hypervisor.
  uint64_t bits = 0;
  if (::getrandom(&bits, sizeof bits, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bits)) {
    std::random_device rd;
    bits = (static_cast<uint64_t>(rd()) << 32) | rd();
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(bits));
  return buf;
}

}  // namespace ember
