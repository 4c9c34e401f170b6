// What this kernel can do for ember, probed once (CRIU's kerndat is the model) and cached: in
// memory for the process, and on disk in <run-dir>/kernel-probe.json keyed by the kernel release
// and the boot id, so the probe runs once per boot. Each feature is tried for real where a
// cheap attempt exists (create a user namespace, mount an overlay in one, mount a tiny EROFS
// file, idmap it) in forked children that leave nothing behind.
//
// Cache file (JSON, written atomically):
//   {"format": 1, "release": "6.18.44", "boot_id": "…", "probe_ms": 41.5,
//    "cgroup": {"layout": "hybrid", "version": 1, "controllers": {"memory": "v1 /sys/…"}},
//    "values": {"pid_max": 32768, …},
//    "features": [{"name": "user_namespaces", "ok": true, "required": true,
//                  "detail": "…", "fallback": "…"}, …]}
// A file that does not parse, has another format, release or boot id is ignored and replaced.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::sys {

inline constexpr int kProbeFormat = 1;

struct FeatureResult {
  std::string name;  // stable identifier, e.g. "idmapped_mounts"
  bool ok = false;
  bool required = false;  // ember cannot run without it
  std::string detail;     // what was found or what failed, with the errno
  std::string fallback;   // what ember does instead when !ok ("" when required)
  bool operator==(const FeatureResult&) const = default;
};

struct ProbeKey {
  std::string release;  // uname -r
  std::string boot_id;  // /proc/sys/kernel/random/boot_id
  bool operator==(const ProbeKey&) const = default;
};

struct KernelFeatures {
  ProbeKey key;
  double probe_ms = 0;
  // Cgroups: what is mounted ("v1" | "v2" | "hybrid" | "none"), which version ember uses (0 if
  // it cannot), and where each of memory/cpu/pids lives ("v1 /sys/fs/cgroup/memory").
  std::string cgroup_layout;
  int cgroup_version = 0;
  std::map<std::string, std::string> cgroup_controllers;
  // Numbers: pid_max, nofile_soft, nofile_hard, max_user_namespaces, cap_last_cap.
  std::map<std::string, uint64_t> values;
  std::vector<FeatureResult> features;

  const FeatureResult* Find(std::string_view name) const;
  bool Has(std::string_view name) const {
    const FeatureResult* f = Find(name);
    return f != nullptr && f->ok;
  }
  uint64_t Value(std::string_view name, uint64_t fallback = 0) const;
  // Required features that failed; empty when ember can run here.
  std::vector<const FeatureResult*> MissingRequired() const;
  bool operator==(const KernelFeatures&) const = default;
};

// Names of the features, in report order.
namespace feature {
inline constexpr std::string_view kUserNamespaces = "user_namespaces";
inline constexpr std::string_view kOverlayInUserns = "overlay_in_userns";
inline constexpr std::string_view kErofsFileBacked = "erofs_file_backed";
inline constexpr std::string_view kIdmappedMounts = "idmapped_mounts";
inline constexpr std::string_view kCgroups = "cgroups";
inline constexpr std::string_view kCloneIntoCgroup = "clone_into_cgroup";
inline constexpr std::string_view kTimeNamespaces = "time_namespaces";
inline constexpr std::string_view kPidfd = "pidfd";
inline constexpr std::string_view kSeccomp = "seccomp_filter";
inline constexpr std::string_view kRseq = "rseq";
inline constexpr std::string_view kPrSetMmMap = "prctl_mm_map";
inline constexpr std::string_view kPidMax = "pid_max";
inline constexpr std::string_view kNofile = "rlimit_nofile";
inline constexpr std::string_view kMaxUserNamespaces = "max_user_namespaces";
}  // namespace feature

// The key of the running kernel.
Result<ProbeKey> CurrentProbeKey();

// Runs every probe now, without any cache, with its scratch files under `scratch_parent`. Never
// fails as a whole: a probe that cannot run is a failed feature with its reason.
KernelFeatures ProbeKernel(const std::string& scratch_parent = "/tmp");

// The features for this boot: from memory, else from <run_dir>/kernel-probe.json if its key
// matches, else probed (scratch files under run_dir) and stored. Cache write failures are logged,
// not fatal.
const KernelFeatures& Probe(const std::string& run_dir);
// Probes afresh and rewrites the cache (ember doctor).
const KernelFeatures& Reprobe(const std::string& run_dir);

std::string ProbeCachePath(const std::string& run_dir);
std::string SerializeFeatures(const KernelFeatures& features);
Result<KernelFeatures> ParseFeatures(std::string_view json);
// The cached features if the file exists, parses and matches `key`.
Result<KernelFeatures> LoadProbeCache(const std::string& path, const ProbeKey& key);

}  // namespace ember::sys
