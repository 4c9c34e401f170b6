// `ember snapshot NAME` (or `ember snapshot create NAME`): the daemon takes the snapshot of a
// deployed function for cold and warm boot. `ember snapshot inspect FILE`: what a snapshot
// image holds, for people (text) and scripts (--json).
#include <cstdio>

#include "base/units.h"
#include "cli/client.h"
#include "snapshot/compat.h"
#include "snapshot/compat_capture.h"
#include "snapshot/image_reader.h"
#include "snapshot/inspect.h"

namespace ember::cli {
namespace {

struct SnapshotArgs {
  std::string function;
  std::string output = "text";
  std::string file;
  bool json = false;
  bool verify_pages = false;
};

int RunInspect(const SnapshotArgs& args) {
  auto image = snapshot::ImageReader::Open(args.file);
  if (!image) return ReportError(image.error());
  snapshot::InspectExtras extras;
  if (args.verify_pages) {
    if (auto verified = image->VerifyPages(); !verified) return ReportError(verified.error());
    extras.pages_verified = true;
  }
  // Whether this host could restore it: informative only, so a host whose record cannot be
  // read still gets the rest of the report. The libc is the function image's (checked at
  // restore, where the image is known), so it is taken from the snapshot here.
  if (auto host =
          snapshot::HostCompat(std::string(snapshot::FixedString(image->compat().glibc_version)));
      host) {
    // A daemon of this build restores with the agent beside this binary (daemon --agent-dir
    // aside): that is the ember version a snapshot must name.
    if (auto mark = snapshot::AgentBuildMark(ExecutableDir()); mark) host->ember_version = *mark;
    extras.host_compat = snapshot::CheckCompat(image->compat(), *host);
  } else {
    std::fprintf(stderr, "ember: warning: %s\n", host.error().ToString().c_str());
  }
  const std::string out = args.json ? snapshot::RenderImageJson(*image, extras) + "\n"
                                    : snapshot::RenderImageText(*image, extras);
  std::fputs(out.c_str(), stdout);
  return 0;
}

int RunCreate(const GlobalOptions& global, const SnapshotArgs& args) {
  OutputFormat format = ParseOutputFormat(args.output);
  auto client = DaemonClient(global);
  // As long as the daemon takes: it boots an instance (the function's init) and writes the image.
  auto response =
      client.Request("POST", "/v1/functions/" + daemon::PercentEncode(args.function) + "/snapshot",
                     {}, {}, {}, std::chrono::milliseconds(0));
  if (!response) return ReportError(response.error());
  if (response->status != 200) {
    return ReportApiError(*response, "snapshot " + args.function, format);
  }
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", response->body.c_str());
    return 0;
  }
  auto body = nlohmann::json::parse(response->body, nullptr, false);
  std::printf("snapshot of %s (version %s): %s, %s\n", args.function.c_str(),
              JsonText(body, "version").c_str(), JsonText(body, "path").c_str(),
              body.contains("size_bytes") && body["size_bytes"].is_number_unsigned()
                  ? FormatSize(body["size_bytes"].get<uint64_t>()).c_str()
                  : "?");
  return 0;
}

}  // namespace

void RegisterSnapshotCommands(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<SnapshotArgs>();
  CLI::App* snapshot = app.add_subcommand(
      "snapshot",
      "take a deployed function's snapshot for cold and warm boot (ember snapshot "
      "NAME), or inspect a snapshot image");
  snapshot->require_subcommand(0, 1);
  snapshot->add_option("function", args->function, "the function to take a snapshot of");
  AddOutputOption(snapshot, &args->output);
  snapshot->callback([snapshot, &global, args, exit_code] {
    if (snapshot->get_subcommands().empty()) {
      if (args->function.empty()) {
        std::fprintf(stderr,
                     "ember snapshot: name a function (ember snapshot NAME) or a "
                     "subcommand (create, inspect); see --help\n");
        *exit_code = 2;
        return;
      }
      *exit_code = RunCreate(global, *args);
    }
  });

  CLI::App* create = snapshot->add_subcommand(
      "create", "take the snapshot of a deployed function (the same as ember snapshot NAME)");
  create->add_option("function", args->function, "the function")->required();
  AddOutputOption(create, &args->output);
  create->callback([&global, args, exit_code] { *exit_code = RunCreate(global, *args); });

  CLI::App* inspect = snapshot->add_subcommand(
      "inspect", "show a snapshot image: header, compat record, threads, areas, files, signals");
  inspect->add_option("file", args->file, "snapshot image file")->required();
  inspect->add_flag("--json", args->json, "print JSON instead of text");
  inspect->add_flag("--verify-pages", args->verify_pages,
                    "also read every stored page and check its checksum (slow on big images)");
  inspect->callback([args, exit_code] { *exit_code = RunInspect(*args); });
}

}  // namespace ember::cli
