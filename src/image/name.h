// Image names: what `ember image` commands and function manifests refer to an image by. A name is
// also a file name under refs/, which is why the alphabet is this small.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace ember::image {

inline constexpr std::string_view kNameRule = "[a-z0-9][a-z0-9._-]{0,127}";

// Fails with kInvalidArgument and a message that states the rule.
Status ValidateImageName(std::string_view name);

// A valid name made from arbitrary text (a file name, a docker tag): lower-cased, every other
// character replaced by '-', leading punctuation dropped, cut to 128. "" if nothing usable is left.
std::string SanitizeImageName(std::string_view text);

// The default name for an import source: "/x/Busybox-1.36.tar.gz" -> "busybox-1.36",
// "/srv/rootfs/" -> "rootfs".
std::string NameFromPath(std::string_view path);

// The default name from a docker RepoTag: "docker.io/library/python:3.11-slim" ->
// "python-3.11-slim", "busybox:latest" -> "busybox".
std::string NameFromRepoTag(std::string_view tag);

}  // namespace ember::image
