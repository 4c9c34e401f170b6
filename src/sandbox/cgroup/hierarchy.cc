#include "sandbox/cgroup/hierarchy.h"

#include <algorithm>
#include <sstream>

#include "base/fs.h"

namespace ember::cgroup {
namespace {

std::vector<std::string> Split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() &&
        std::all_of(field.begin() + i + 1, field.begin() + i + 4,
                    [](char c) { return c >= '0' && c <= '7'; })) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

std::string_view ControllerName(Controller controller) {
  switch (controller) {
    case Controller::kMemory:
      return "memory";
    case Controller::kCpu:
      return "cpu";
    case Controller::kPids:
      return "pids";
  }
  return "?";
}

std::string Hierarchy::RootFor(Controller controller) const {
  if (version == Version::kV2) return v2_root;
  auto it = v1_mounts.find(std::string(ControllerName(controller)));
  return it == v1_mounts.end() ? std::string() : it->second;
}

std::vector<std::string> Hierarchy::Roots() const {
  std::vector<std::string> roots;
  for (Controller c : kControllers) {
    std::string root = RootFor(c);
    if (!root.empty() && !Contains(roots, root)) roots.push_back(root);
  }
  return roots;
}

std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo) {
  std::vector<CgroupMount> mounts;
  for (const std::string& line : Split(mountinfo, '\n')) {
    // id parent major:minor root mount-point options [optional fields...] - fstype source super
    std::vector<std::string> fields = Split(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (dash == fields.end() || fields.end() - dash < 4 || dash - fields.begin() < 6) continue;
    const std::string& fstype = dash[1];
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupMount mount;
    mount.version = fstype == "cgroup2" ? Version::kV2 : Version::kV1;
    mount.root = Unescape(fields[3]);
    mount.mount_point = Unescape(fields[4]);
    mount.super_options = dash[3];
    if (mount.version == Version::kV1) {
      // Super options name the controllers bound to this hierarchy ("rw,cpu,cpuacct"); named
      // hierarchies without a controller ("name=systemd") and plain options are skipped.
      static const std::vector<std::string> kNotControllers = {
          "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"};
      for (const std::string& opt : Split(dash[3], ',')) {
        if (opt.find('=') != std::string::npos || Contains(kNotControllers, opt)) continue;
        mount.controllers.push_back(opt);
      }
      if (mount.controllers.empty()) continue;
    }
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

Result<Hierarchy> DecideHierarchy(const std::vector<CgroupMount>& mounts,
                                  std::string_view v2_controllers) {
  Hierarchy h;
  bool has_v1 = false;
  for (const CgroupMount& m : mounts) {
    if (m.version == Version::kV2) {
      // The first cgroup2 mount wins; later ones are bind mounts of the same tree.
      if (h.v2_root.empty()) {
        h.v2_root = m.mount_point;
        h.v2_options = m.super_options;
      }
      continue;
    }
    has_v1 = true;
    for (const std::string& c : m.controllers) h.v1_mounts.emplace(c, m.mount_point);
  }
  if (!has_v1 && h.v2_root.empty()) {
    return Fail(ErrorCode::kUnavailable,
                "no cgroup filesystem is mounted (neither cgroup nor cgroup2)");
  }
  h.layout = !has_v1 ? "v2" : h.v2_root.empty() ? "v1" : "hybrid";
  for (std::string_view word : Split(v2_controllers, ' ')) {
    std::string c(word);
    while (!c.empty() && (c.back() == '\n' || c.back() == '\t')) c.pop_back();
    if (!c.empty()) h.v2_controllers.push_back(c);
  }

  std::vector<std::string> on_v1, on_v2, missing;
  for (Controller c : kControllers) {
    std::string name(ControllerName(c));
    if (h.v1_mounts.count(name)) {
      on_v1.push_back(name);
    } else if (!h.v2_root.empty() && Contains(h.v2_controllers, name)) {
      on_v2.push_back(name);
    } else {
      missing.push_back(name);
    }
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!missing.empty()) {
    std::string where = "not mounted as a cgroup v1 hierarchy";
    if (!h.v2_root.empty()) where += " and not in " + h.v2_root + "/cgroup.controllers";
    return Fail(ErrorCode::kUnavailable,
                "cgroup controller" + std::string(missing.size() > 1 ? "s " : " ") + join(missing) +
                    " missing (" + h.layout + " layout): " + where);
  }
  if (!on_v1.empty() && !on_v2.empty()) {
    return Fail(ErrorCode::kUnsupported, "cgroup controllers are split between v1 (" + join(on_v1) +
                                             ") and v2 (" + join(on_v2) +
                                             "); ember needs memory, cpu and pids in one version");
  }
  h.version = on_v2.empty() ? Version::kV1 : Version::kV2;
  return h;
}

Result<Hierarchy> DetectHierarchy(const std::string& mountinfo) {
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(mountinfo));
  std::vector<CgroupMount> mounts = ParseCgroupMounts(text);
  std::string v2_controllers;
  for (const CgroupMount& m : mounts) {
    if (m.version != Version::kV2) continue;
    auto content = ReadFile(m.mount_point + "/cgroup.controllers");
    if (!content) return Fail(std::move(content).error().Context("detect cgroup v2 controllers"));
    v2_controllers = *content;
    break;
  }
  auto decided = DecideHierarchy(mounts, v2_controllers);
  if (!decided) return Fail(std::move(decided).error().Context("detect cgroups from " + mountinfo));
  return decided;
}

}  // namespace ember::cgroup
