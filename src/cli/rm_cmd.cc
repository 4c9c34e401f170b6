// `ember rm NAME...`: removes functions (their instances are stopped first); `ember rm -i ID...`
// stops single instances instead.
#include <cstdio>

#include "cli/client.h"

namespace ember::cli {
namespace {

struct RmArgs {
  std::vector<std::string> names;
  bool instances = false;
};

int RunRm(const GlobalOptions& global, const RmArgs& args) {
  auto client = DaemonClient(global);
  const char* collection = args.instances ? "/v1/instances/" : "/v1/functions/";
  const char* what = args.instances ? "instance" : "function";
  int code = 0;
  for (const auto& name : args.names) {
    auto response = client.Request("DELETE", collection + daemon::PercentEncode(name), {}, {}, {},
                                   kQuickTimeout);
    if (!response) return ReportError(response.error());  // the next would fail the same way
    if (response->status < 200 || response->status >= 300) {
      code = ReportApiError(*response, std::string("remove ") + what + " " + name,
                            OutputFormat::kText);
      continue;
    }
    std::fprintf(stderr, "removed %s %s\n", what, name.c_str());
  }
  return code;
}

}  // namespace

void RegisterRmCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<RmArgs>();
  CLI::App* rm =
      app.add_subcommand("rm", "remove functions (stopping their instances), or instances");
  rm->add_option("names", args->names, "function names (instance ids with -i)")->required();
  rm->add_flag("-i,--instance", args->instances, "the names are instance ids: stop those");
  rm->callback([&global, args, exit_code] { *exit_code = RunRm(global, *args); });
}

}  // namespace ember::cli
