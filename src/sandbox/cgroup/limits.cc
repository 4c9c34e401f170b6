#include "sandbox/cgroup/limits.h"

#include <cmath>

#include "base/fs.h"

namespace ember::cgroup {

const std::string& SlotDirs::For(Controller controller) const {
  switch (controller) {
    case Controller::kMemory:
      return memory;
    case Controller::kCpu:
      return cpu;
    case Controller::kPids:
      return pids;
  }
  return memory;
}

std::vector<std::string> SlotDirs::Distinct() const {
  std::vector<std::string> out;
  for (const std::string* d : {&memory, &cpu, &pids}) {
    bool seen = false;
    for (const auto& o : out) seen = seen || o == *d;
    if (!seen && !d->empty()) out.push_back(*d);
  }
  return out;
}

Result<std::vector<ControlWrite>> PlanLimits(Version version, const sandbox::CgroupLimits& limits,
                                             const LimitFeatures& features) {
  std::vector<ControlWrite> w;
  if (limits.memory_bytes && *limits.memory_bytes == 0) {
    return Fail(ErrorCode::kInvalidArgument, "memory limit must be above 0 bytes");
  }
  if (limits.pids && *limits.pids == 0) {
    return Fail(ErrorCode::kInvalidArgument, "pids limit must be at least 1");
  }
  std::string quota;
  if (limits.cpus) {
    double cpus = *limits.cpus;
    if (!(cpus > 0) || !std::isfinite(cpus)) {
      return Fail(ErrorCode::kInvalidArgument, "cpus must be a positive number");
    }
    auto us = static_cast<uint64_t>(std::llround(cpus * static_cast<double>(kCpuPeriodUs)));
    quota = std::to_string(std::max(us, kMinCpuQuotaUs));
  }
  std::string memory = limits.memory_bytes ? std::to_string(*limits.memory_bytes) : "";
  std::string pids = limits.pids ? std::to_string(*limits.pids) : "max";

  if (version == Version::kV1) {
    // The kernel requires memsw >= limit at every moment, and the slot's previous values are
    // unknown. Lifting memsw first makes the order of the next two writes always valid.
    if (features.v1_memsw) {
      w.push_back({Controller::kMemory, "memory.memsw.limit_in_bytes", "-1"});
    }
    w.push_back({Controller::kMemory, "memory.limit_in_bytes", memory.empty() ? "-1" : memory});
    // memsw = limit: no swap on top of the memory limit, as on v2.
    if (features.v1_memsw && !memory.empty()) {
      w.push_back({Controller::kMemory, "memory.memsw.limit_in_bytes", memory});
    }
    w.push_back({Controller::kCpu, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs)});
    w.push_back({Controller::kCpu, "cpu.cfs_quota_us", quota.empty() ? "-1" : quota});
    w.push_back({Controller::kPids, "pids.max", pids});
  } else {
    w.push_back({Controller::kMemory, "memory.max", memory.empty() ? "max" : memory});
    if (features.v2_swap_max) {
      w.push_back({Controller::kMemory, "memory.swap.max", memory.empty() ? "max" : "0"});
    }
    w.push_back({Controller::kCpu, "cpu.max",
                 (quota.empty() ? "max" : quota) + " " + std::to_string(kCpuPeriodUs)});
    w.push_back({Controller::kPids, "pids.max", pids});
  }
  return w;
}

LimitFeatures ProbeLimitFeatures(Version version, const std::string& memory_dir) {
  LimitFeatures f;
  if (version == Version::kV1) {
    f.v1_memsw = PathExists(memory_dir + "/memory.memsw.limit_in_bytes");
  } else {
    f.v2_swap_max = PathExists(memory_dir + "/memory.swap.max");
  }
  return f;
}

Status ApplyWrites(const std::vector<ControlWrite>& writes, const SlotDirs& dirs) {
  for (const ControlWrite& w : writes) {
    EMBER_TRY_CTX(WriteControlFile(dirs.For(w.controller) + "/" + w.file, w.value),
                  "set cgroup limit");
  }
  return Ok();
}

}  // namespace ember::cgroup
