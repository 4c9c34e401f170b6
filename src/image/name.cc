#include "image/name.h"

#include <array>

namespace ember::image {
namespace {

bool IsLeadChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsNameChar(char c) { return IsLeadChar(c) || c == '.' || c == '_' || c == '-'; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Status ValidateImageName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 128 && IsLeadChar(name[0]);
  for (char c : name) ok = ok && IsNameChar(c);
  if (!ok) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "invalid image name '" + std::string(name) + "': a name must match " +
            std::string(kNameRule) +
            " (lower-case letters, digits, '.', '_', '-'; starting with a letter or digit)");
  }
  return Ok();
}

std::string SanitizeImageName(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!IsNameChar(c)) c = '-';
    if (out.empty() && !IsLeadChar(c)) continue;
    out.push_back(c);
  }
  if (out.size() > 128) out.resize(128);
  while (!out.empty() && !IsLeadChar(out.back())) out.pop_back();
  return out;
}

std::string NameFromPath(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  // Longest suffixes first, so "x.tar.gz" loses both parts.
  static constexpr std::array<std::string_view, 12> kSuffixes = {
      ".tar.gz", ".tar.zst", ".tar.xz", ".tar.bz2", ".tar.lz4", ".tgz",
      ".tzst",   ".txz",     ".tar",    ".oci",     ".gz",      ".zst"};
  for (auto suffix : kSuffixes) {
    if (EndsWith(base, suffix) && base.size() > suffix.size()) {
      base.remove_suffix(suffix.size());
      break;
    }
  }
  return SanitizeImageName(base);
}

std::string NameFromRepoTag(std::string_view tag) {
  // The repository's last path component, but a ':' after it is the tag.
  auto slash = tag.rfind('/');
  if (slash != std::string_view::npos) tag = tag.substr(slash + 1);
  std::string_view repo = tag, version;
  if (auto colon = tag.find(':'); colon != std::string_view::npos) {
    repo = tag.substr(0, colon);
    version = tag.substr(colon + 1);
  }
  if (version.empty() || version == "latest") return SanitizeImageName(repo);
  return SanitizeImageName(std::string(repo) + "-" + std::string(version));
}

}  // namespace ember::image
