// `ember doctor`: what this host's kernel offers ember, what ember does where it offers less,
// and whether ember can run here at all (exit 1 when a required feature is missing). It always
// probes afresh and rewrites the per-boot cache that `ember run` reads.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "sys/kernel_probe.h"

namespace ember::cli {
namespace {

struct DoctorArgs {
  bool json = false;
  bool cached = false;
};

std::string CannotRunLine(const std::vector<const sys::FeatureResult*>& missing) {
  std::string line = "ember cannot run here:";
  for (size_t i = 0; i < missing.size(); ++i) {
    line += (i == 0 ? " " : "; ") + missing[i]->name + " (" + missing[i]->detail + ")";
  }
  return line;
}

void PrintTable(const sys::KernelFeatures& k) {
  std::printf("kernel %s, probed in %.1f ms\n\n", k.key.release.c_str(), k.probe_ms);
  size_t width = 0;
  for (const auto& f : k.features) width = std::max(width, f.name.size());
  int fallbacks = 0;
  for (const auto& f : k.features) {
    // ok: available; "--": missing, ember falls back; FAIL: missing and required.
    const char* mark = f.ok ? " ok " : f.required ? "FAIL" : " -- ";
    std::printf("%s  %-*s  %s\n", mark, static_cast<int>(width), f.name.c_str(), f.detail.c_str());
    if (!f.ok && !f.fallback.empty()) {
      ++fallbacks;
      std::printf("      %-*s  fallback: %s\n", static_cast<int>(width), "", f.fallback.c_str());
    }
  }
  std::printf("\n");
  auto missing = k.MissingRequired();
  if (!missing.empty()) {
    std::printf("%s\n", CannotRunLine(missing).c_str());
    return;
  }
  int available = 0;
  for (const auto& f : k.features) available += f.ok ? 1 : 0;
  std::printf(
      "ember can run here: %d of %zu features available, %d fallback%s in use; "
      "cgroup %s (ember uses v%d)\n",
      available, k.features.size(), fallbacks, fallbacks == 1 ? "" : "s", k.cgroup_layout.c_str(),
      k.cgroup_version);
}

int RunDoctor(const GlobalOptions& global, const DoctorArgs& args) {
  const sys::KernelFeatures& k =
      args.cached ? sys::Probe(global.run_dir) : sys::Reprobe(global.run_dir);
  auto missing = k.MissingRequired();
  if (args.json) {
    auto j = nlohmann::json::parse(sys::SerializeFeatures(k));
    j["can_run"] = missing.empty();
    j["missing_required"] = nlohmann::json::array();
    for (const auto* f : missing) j["missing_required"].push_back(f->name);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintTable(k);
  }
  if (!missing.empty()) {
    if (args.json) std::fprintf(stderr, "%s\n", CannotRunLine(missing).c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void RegisterDoctorCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<DoctorArgs>();
  CLI::App* cmd = app.add_subcommand(
      "doctor",
      "Check what this host's kernel offers ember (namespaces, overlay, EROFS, idmapped mounts,\n"
      "cgroups, seccomp, …) and what ember falls back to. Exits 1 if ember cannot run here.");
  cmd->add_flag("--json", args->json, "print every feature as one JSON object");
  cmd->add_flag("--cached", args->cached,
                "show this boot's cached probe (from the run dir) instead of probing again");
  cmd->callback([&global, exit_code, args] { *exit_code = RunDoctor(global, *args); });
}

}  // namespace ember::cli
