// Parsers for the human units ember accepts on the command line and in manifests. Each error
// names the value and what is allowed, e.g. "invalid memory size '12Q': use a number with an
// optional K, M, G or T suffix (binary units), such as 128M".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ember {

// "128M", "1G", "65536", "512Ki", "2GiB", "64MB" -> bytes (K/M/G/T are powers of 1024).
// Zero is rejected: a zero limit is never what a user means.
Result<uint64_t> ParseSize(std::string_view text, std::string_view what = "size");
// "10s", "500ms", "2m", "1h", "1.5s", bare number = seconds. Must be > 0.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text,
                                                std::string_view what = "duration");
// "0.5", "2" -> CPUs as a positive fraction, at most 1024.
Result<double> ParseCpus(std::string_view text);
// A positive integer within [min, max].
Result<uint64_t> ParseCount(std::string_view text, std::string_view what, uint64_t min,
                            uint64_t max);

std::string FormatSize(uint64_t bytes);                    // 134217728 -> "128M"
std::string FormatDuration(std::chrono::milliseconds ms);  // -> "10s", "250ms"
// RFC 3339 in UTC, to the second: "2026-11-21T16:55:15Z".
std::string FormatRfc3339(std::chrono::system_clock::time_point t);
inline std::string NowRfc3339() { return FormatRfc3339(std::chrono::system_clock::now()); }
// 16 random hex digits (getrandom), for ids and names of temporary files and directories.
std::string RandomHex();

}  // namespace ember
