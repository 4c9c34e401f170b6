// `ember image build RECIPE`: images made from Debian packages by mmdebstrap. A recipe is data —
// a suite and a package list — so adding a runtime is adding a row to the table in build.cc.
// The mirror is the host's own (its apt sources), so a host that can install packages can build
// images, through whatever proxy or local mirror it is configured for.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::image {

struct Recipe {
  std::string name;
  std::string description;
  std::string suite;                  // Debian suite, e.g. bookworm
  std::vector<std::string> packages;  // on top of the minbase variant
};

const std::vector<Recipe>& Recipes();
// The recipe called `name`; an unknown name fails with a message listing the known ones.
Result<Recipe> FindRecipe(std::string_view name);

struct Mirror {
  std::string uri;
  std::string origin;  // the file it came from, or "default"
};
inline constexpr std::string_view kDefaultDebianMirror = "http://deb.debian.org/debian";

// The URI of the first enabled `deb` source for `suite` with component main: deb822 stanzas
// (*.sources) first, then one-line sources.list entries; `files` are (path, content) pairs.
// Falls back to kDefaultDebianMirror.
Mirror FindDebianMirror(std::string_view suite,
                        const std::vector<std::pair<std::string, std::string>>& files);
// Reads /etc/apt/sources.list.d/*.sources and /etc/apt/sources.list under `apt_dir`.
Mirror HostDebianMirror(std::string_view suite, const std::string& apt_dir = "/etc/apt");

using ProgressFn = std::function<void(std::string_view line)>;

// Runs mmdebstrap (root mode, minbase) for `recipe` plus `extra_packages` into `target` (which
// must not exist yet). mmdebstrap's own progress lines go to `progress`. `hold_fd`, if >= 0, is
// inherited by mmdebstrap so that a lock on it stays held for as long as mmdebstrap runs, even
// if ember itself is killed.
Status RunMmdebstrap(const Recipe& recipe, const Mirror& mirror,
                     const std::vector<std::string>& extra_packages, const std::string& target,
                     const ProgressFn& progress, int hold_fd = -1);

}  // namespace ember::image
