#include "sandbox/spec.h"

#include <sys/resource.h>

namespace ember::sandbox {

Status Validate(const SandboxSpec& spec) {
  auto invalid = [&](const std::string& what) {
    return Fail(ErrorCode::kInvalidArgument, "sandbox " + spec.id + ": " + what);
  };
  if (spec.id.empty()) return Fail(ErrorCode::kInvalidArgument, "sandbox spec has no id");
  if (spec.argv.empty() || spec.argv[0].empty()) return invalid("no command to run");
  if (spec.lower_dirs.empty()) return invalid("no image (lower dir) for the rootfs");
  for (const auto& dir : spec.lower_dirs) {
    if (dir.find_first_of(",:") != std::string::npos) {
      return invalid("image path '" + dir + "' contains ',' or ':', which overlayfs cannot take");
    }
  }
  if (spec.tmpfs_size < (1ULL << 20)) return invalid("writable layer must be at least 1M");
  if (spec.ids.count == 0 || spec.ids.host_base == 0) {
    return invalid("id range must be non-empty and must not map to host root");
  }
  if (spec.uid >= spec.ids.count || spec.gid >= spec.ids.count) {
    return invalid("uid/gid " + std::to_string(spec.uid) + ":" + std::to_string(spec.gid) +
                   " is outside the sandbox's id range of " + std::to_string(spec.ids.count));
  }
  if (spec.fork_template && spec.restorer) {
    return invalid("a sandbox is either a fork-boot template or a restore, not both");
  }
  if (spec.fork_template && (spec.uid != 0 || spec.gid != 0)) {
    return invalid(
        "a fork-boot template runs as root of its user namespace (its children switch "
        "to the function's user), not as " +
        std::to_string(spec.uid) + ":" + std::to_string(spec.gid));
  }
  if (spec.hostname.size() > 64) return invalid("hostname longer than 64 characters");
  if (!spec.workdir.empty() && spec.workdir[0] != '/') {
    return invalid("workdir '" + spec.workdir + "' must be an absolute path");
  }
  for (const auto& bind : spec.binds) {
    if (bind.source.empty() || bind.source[0] != '/' || bind.target.size() < 2 ||
        bind.target[0] != '/' || bind.target.find("..") != std::string::npos) {
      return invalid("bind mount '" + bind.source + "' -> '" + bind.target +
                     "' needs absolute paths, a target other than / and no '..'");
    }
  }
  for (const auto& kv : spec.env) {
    if (kv.find('=') == std::string::npos || kv[0] == '=') {
      return invalid("environment entry '" + kv + "' is not KEY=VALUE");
    }
  }
  return Ok();
}

std::vector<std::string> DefaultEnv() {
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
          "LANG=C.UTF-8"};
}

std::vector<Rlimit> DefaultRlimits() { return {{RLIMIT_NOFILE, 1024, 4096}, {RLIMIT_CORE, 0, 0}}; }

}  // namespace ember::sandbox
