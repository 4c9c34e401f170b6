// `ember deploy DIR`: packs the bundle in DIR (ember.toml and the code) and sends it to the
// daemon, which stores it and initializes the function once. A broken manifest or a missing
// handler is reported before anything is sent; an init failure prints the daemon's message and
// the function's traceback.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "engine/bundle.h"
#include "engine/manifest.h"

namespace ember::cli {
namespace {

struct DeployArgs {
  std::string dir;
  std::string output = "text";
};

int RunDeploy(const GlobalOptions& global, const DeployArgs& args) {
  OutputFormat format = ParseOutputFormat(args.output);
  auto start = std::chrono::steady_clock::now();
  auto manifest = engine::LoadBundleManifest(args.dir);
  if (!manifest) return ReportError(manifest.error());
  auto bundle = engine::PackBundle(args.dir);
  if (!bundle) return ReportError(bundle.error());
  auto client = DaemonClient(global);
  const std::string& name = manifest->name;
  auto response = client.Request("PUT", "/v1/functions/" + daemon::PercentEncode(name), *bundle,
                                 "application/x-tar");
  if (!response) return ReportError(response.error());
  if (response->status < 200 || response->status >= 300) {
    return ReportApiError(*response, "deploy " + name, format);
  }
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response->body.c_str());
    return 0;
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  auto info = nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  std::string version = info.is_object() && info.contains("version") && info["version"].is_string()
                            ? info["version"].get<std::string>()
                            : "?";
  std::printf("deployed %s (version %s) in %lld ms\n", name.c_str(), version.c_str(),
              static_cast<long long>(took.count()));
  return 0;
}

}  // namespace

void RegisterDeployCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<DeployArgs>();
  CLI::App* deploy = app.add_subcommand(
      "deploy", "deploy the function bundle in DIR (its ember.toml names the function)");
  deploy->add_option("dir", args->dir, "bundle directory with ember.toml and the code")->required();
  AddOutputOption(deploy, &args->output);
  deploy->callback([&global, args, exit_code] { *exit_code = RunDeploy(global, *args); });
}

}  // namespace ember::cli
