// Sandbox limits as a list of cgroup control-file writes: a pure plan (unit-tested for v1 and
// v2) and a small executor. Every limit is always written, unset ones as "unlimited", because a
// pooled cgroup is reused and must not keep the previous sandbox's limits.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/spec.h"

namespace ember::cgroup {

// CFS period used for every sandbox: quota = cpus × period.
inline constexpr uint64_t kCpuPeriodUs = 100000;
// The kernel rejects a quota below 1ms.
inline constexpr uint64_t kMinCpuQuotaUs = 1000;

// Optional control files, which depend on kernel configuration (swap accounting) and version.
struct LimitFeatures {
  bool v1_memsw = false;     // memory.memsw.limit_in_bytes exists
  bool v2_swap_max = false;  // memory.swap.max exists
};

struct ControlWrite {
  Controller controller;  // picks the directory on v1; v2 has one directory
  std::string file;       // e.g. "memory.limit_in_bytes"
  std::string value;      // e.g. "134217728"
  bool operator==(const ControlWrite&) const = default;
};

// The writes, in the order they must happen, that give a cgroup exactly `limits`.
Result<std::vector<ControlWrite>> PlanLimits(Version version, const sandbox::CgroupLimits& limits,
                                             const LimitFeatures& features);

// Looks up which optional files a slot has (one stat each), for PlanLimits.
LimitFeatures ProbeLimitFeatures(Version version, const std::string& memory_dir);

// Where a slot's control files are: one directory per controller (the same one on v2).
struct SlotDirs {
  std::string memory;
  std::string cpu;
  std::string pids;
  const std::string& For(Controller controller) const;
  // The distinct directories, memory's first: where pids are attached and listed.
  std::vector<std::string> Distinct() const;
};

// Performs the writes; the first failure stops and names the file and the value.
Status ApplyWrites(const std::vector<ControlWrite>& writes, const SlotDirs& dirs);

}  // namespace ember::cgroup
