#include "sys/kernel_probe.h"

#include <sys/utsname.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/fs.h"
#include "base/log.h"
#include "sys/kernel_checks.h"

namespace ember::sys {

const FeatureResult* KernelFeatures::Find(std::string_view name) const {
  for (const auto& f : features) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

uint64_t KernelFeatures::Value(std::string_view name, uint64_t fallback) const {
  auto it = values.find(std::string(name));
  return it == values.end() ? fallback : it->second;
}

std::vector<const FeatureResult*> KernelFeatures::MissingRequired() const {
  std::vector<const FeatureResult*> missing;
  for (const auto& f : features) {
    if (f.required && !f.ok) missing.push_back(&f);
  }
  return missing;
}

Result<ProbeKey> CurrentProbeKey() {
  struct utsname u {};
  if (::uname(&u) != 0) return FailErrno("uname");
  EMBER_ASSIGN_OR_RETURN(std::string boot_id, ReadFile("/proc/sys/kernel/random/boot_id"));
  return ProbeKey{u.release, kernel_checks::Trim(boot_id)};
}

KernelFeatures ProbeKernel(const std::string& scratch_parent) {
  auto start = std::chrono::steady_clock::now();
  KernelFeatures k;
  if (auto key = CurrentProbeKey()) k.key = *key;
  // The checks live in kernel_checks.cc; this is their report order.
  namespace checks = kernel_checks;
  checks::Scratch scratch;
  checks::PrepareScratch(scratch, scratch_parent);
  k.features.push_back(checks::ProbeUserNamespaces());
  k.features.push_back(checks::ProbeOverlay(scratch));
  k.features.push_back(checks::ProbeErofs(scratch));
  k.features.push_back(checks::ProbeIdmap(scratch, k.features.back().ok));
  k.features.push_back(checks::ProbeCgroups(k));
  k.features.push_back(checks::ProbeCloneIntoCgroup(k));
  k.features.push_back(checks::ProbeTimeNamespaces());
  k.features.push_back(checks::ProbePidfd());
  k.features.push_back(checks::ProbeSeccomp());
  k.features.push_back(checks::ProbeRseq());
  k.features.push_back(checks::ProbePrSetMmMap());
  checks::ProbeValues(k);
  k.probe_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return k;
}

std::string SerializeFeatures(const KernelFeatures& k) {
  nlohmann::json j;
  j["format"] = kProbeFormat;
  j["release"] = k.key.release;
  j["boot_id"] = k.key.boot_id;
  j["probe_ms"] = k.probe_ms;
  j["cgroup"] = {{"layout", k.cgroup_layout},
                 {"version", k.cgroup_version},
                 {"controllers", k.cgroup_controllers}};
  j["values"] = k.values;
  j["features"] = nlohmann::json::array();
  for (const auto& f : k.features) {
    j["features"].push_back({{"name", f.name},
                             {"ok", f.ok},
                             {"required", f.required},
                             {"detail", f.detail},
                             {"fallback", f.fallback}});
  }
  return j.dump(2) + "\n";
}

Result<KernelFeatures> ParseFeatures(std::string_view text) {
  // nlohmann throws on type mismatches; this is the edge where that becomes an Error.
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("format").get<int>() != kProbeFormat) {
      return Fail(ErrorCode::kCorrupt, "probe cache format " + j.at("format").dump());
    }
    KernelFeatures k;
    k.key = {j.at("release").get<std::string>(), j.at("boot_id").get<std::string>()};
    k.probe_ms = j.at("probe_ms").get<double>();
    const auto& cg = j.at("cgroup");
    k.cgroup_layout = cg.at("layout").get<std::string>();
    k.cgroup_version = cg.at("version").get<int>();
    k.cgroup_controllers = cg.at("controllers").get<std::map<std::string, std::string>>();
    k.values = j.at("values").get<std::map<std::string, uint64_t>>();
    for (const auto& f : j.at("features")) {
      k.features.push_back({f.at("name").get<std::string>(), f.at("ok").get<bool>(),
                            f.at("required").get<bool>(), f.at("detail").get<std::string>(),
                            f.at("fallback").get<std::string>()});
    }
    if (k.features.empty()) return Fail(ErrorCode::kCorrupt, "probe cache lists no features");
    return k;
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kCorrupt, std::string("probe cache: ") + e.what());
  }
}

std::string ProbeCachePath(const std::string& run_dir) { return run_dir + "/kernel-probe.json"; }

Result<KernelFeatures> LoadProbeCache(const std::string& path, const ProbeKey& key) {
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  EMBER_ASSIGN_OR_RETURN(KernelFeatures k, ParseFeatures(text));
  if (!(k.key == key)) {
    return Fail(ErrorCode::kNotFound, path + " is for kernel " + k.key.release + " boot " +
                                          k.key.boot_id + ", not this boot");
  }
  return k;
}

namespace {

std::mutex g_probe_mutex;
// Guarded by g_probe_mutex. Set once by Probe; only Reprobe (ember doctor) replaces it.
std::optional<KernelFeatures> g_probed;

const KernelFeatures& StoreProbe(const std::string& run_dir, KernelFeatures k, bool write) {
  if (write) {
    auto status = MakeDirs(run_dir);
    if (status) status = WriteFileAtomic(ProbeCachePath(run_dir), SerializeFeatures(k));
    if (!status) spdlog::warn("kernel probe cache not written: {}", status.error().ToString());
  }
  g_probed = std::move(k);
  return *g_probed;
}

}  // namespace

// The probe's scratch files go in ember's own run dir when it can be made, else in /tmp.
std::string ScratchParent(const std::string& run_dir) {
  return MakeDirs(run_dir) ? run_dir : std::string("/tmp");
}

const KernelFeatures& Probe(const std::string& run_dir) {
  std::lock_guard lock(g_probe_mutex);
  if (g_probed) return *g_probed;
  auto key = CurrentProbeKey();
  if (key) {
    auto cached = LoadProbeCache(ProbeCachePath(run_dir), *key);
    if (cached) return StoreProbe(run_dir, std::move(*cached), false);
    if (cached.error().code() != ErrorCode::kNotFound || PathExists(ProbeCachePath(run_dir))) {
      spdlog::info("re-probing the kernel: {}", cached.error().ToString());
    }
  }
  return StoreProbe(run_dir, ProbeKernel(ScratchParent(run_dir)), true);
}

const KernelFeatures& Reprobe(const std::string& run_dir) {
  std::lock_guard lock(g_probe_mutex);
  return StoreProbe(run_dir, ProbeKernel(ScratchParent(run_dir)), true);
}

}  // namespace ember::sys
