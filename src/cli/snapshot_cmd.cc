// `ember snapshot inspect FILE`: what a snapshot image holds, for people (text) and scripts
// (--json). `snapshot` is a command group so that `ember snapshot create NAME` (a snapshot of a
// deployed function, through the daemon) can sit beside `inspect`.
#include <cstdio>

#include "cli/command.h"
#include "snapshot/compat.h"
#include "snapshot/image_reader.h"
#include "snapshot/inspect.h"

namespace ember::cli {
namespace {

struct SnapshotArgs {
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
    extras.host_compat = snapshot::CheckCompat(image->compat(), *host);
  } else {
    std::fprintf(stderr, "ember: warning: %s\n", host.error().ToString().c_str());
  }
  const std::string out = args.json ? snapshot::RenderImageJson(*image, extras) + "\n"
                                    : snapshot::RenderImageText(*image, extras);
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

void RegisterSnapshotCommands(CLI::App& app, GlobalOptions& /*global*/, int* exit_code) {
  auto args = std::make_shared<SnapshotArgs>();
  CLI::App* snapshot =
      app.add_subcommand("snapshot", "inspect snapshot images (checkpointed instances)");
  snapshot->require_subcommand(1);

  CLI::App* inspect = snapshot->add_subcommand(
      "inspect", "show a snapshot image: header, compat record, threads, areas, files, signals");
  inspect->add_option("file", args->file, "snapshot image file")->required();
  inspect->add_flag("--json", args->json, "print JSON instead of text");
  inspect->add_flag("--verify-pages", args->verify_pages,
                    "also read every stored page and check its checksum (slow on big images)");
  inspect->callback([args, exit_code] { *exit_code = RunInspect(*args); });
}

}  // namespace ember::cli
