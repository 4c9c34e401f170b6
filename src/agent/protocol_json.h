// JSON helpers shared by the protocol's codecs (protocol.cc, template_protocol.cc). Every
// decoder refuses what it does not expect with an error naming the message and the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/error.h"

namespace ember::agent::detail {

// nlohmann's dump() without its exception on invalid UTF-8 (replaced by U+FFFD).
std::string DumpJson(const nlohmann::json& value);
// `text` as a JSON object, or kCorrupt naming `what`.
Result<nlohmann::json> ParseObject(std::string_view text, std::string_view what);
// A string member; `required` members must be present, optional ones default to "".
Result<std::string> GetString(const nlohmann::json& object, const char* key, bool required,
                              std::string_view what);
// An optional unsigned integer member (absent = `fallback`).
Result<uint64_t> GetUint(const nlohmann::json& object, const char* key, uint64_t fallback,
                         std::string_view what);

}  // namespace ember::agent::detail
