// `ember image build|import|ls|inspect|rm`: the image store from the command line. Progress goes
// to stderr, results (a digest, a table, JSON) to stdout, so scripts can capture them.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/units.h"
#include "cli/command.h"
#include "image/make_image.h"
#include "image/mount.h"
#include "image/store.h"

namespace ember::cli {
namespace {

struct ImageArgs {
  std::string target;  // recipe, source or name
  std::string name;
  bool force = false;
  std::vector<std::string> include;
  std::string output = "table";
  std::vector<std::string> names;
};

// Every image command starts by collecting mounts that crashed users left behind and by opening
// the store (which removes stale staging dirs).
Result<image::Store> Prepare(const GlobalOptions& global) {
  if (auto cleaned = image::CleanupStaleMounts(global.run_dir, ImageLinger()); !cleaned) {
    std::fprintf(stderr, "ember: warning: %s\n", cleaned.error().ToString().c_str());
  }
  return image::Store::Open(global.data_dir);
}

image::ProgressFn Progress(const char* verb) {
  return [verb](std::string_view line) {
    std::fprintf(stderr, "image %s: %.*s\n", verb, static_cast<int>(line.size()), line.data());
  };
}

void ReportCommitted(const image::Store::Committed& c, const char* verb) {
  if (c.replaced_digest) {
    std::fprintf(stderr, "replaced image %s (was %s)\n", c.record.name.c_str(),
                 c.replaced_digest->substr(0, 12).c_str());
  }
  std::fprintf(stderr, "%s image %s: digest %s, %s%s\n", verb, c.record.name.c_str(),
               c.record.digest.substr(0, 12).c_str(), FormatSize(c.record.size).c_str(),
               c.blob_was_present ? " (same content already stored; shared)" : "");
  std::printf("%s\n", c.record.digest.c_str());
}

int RunBuild(const GlobalOptions& global, const ImageArgs& args) {
  auto store = Prepare(global);
  if (!store) return ReportError(store.error());
  auto built = image::BuildImage(*store, args.target, {args.name, args.force, args.include},
                                 Progress("build"));
  if (!built) return ReportError(built.error());
  ReportCommitted(*built, "built");
  return 0;
}

int RunImport(const GlobalOptions& global, const ImageArgs& args) {
  auto store = Prepare(global);
  if (!store) return ReportError(store.error());
  auto imported =
      image::ImportImage(*store, args.target, {args.name, args.force}, Progress("import"));
  if (!imported) return ReportError(imported.error());
  ReportCommitted(*imported, "imported");
  return 0;
}

int RunList(const GlobalOptions& global, const ImageArgs& args) {
  if (args.output != "table" && args.output != "json") {
    return ReportError(Error(ErrorCode::kInvalidArgument,
                             "invalid --output '" + args.output + "': use table or json"));
  }
  auto store = Prepare(global);
  if (!store) return ReportError(store.error());
  auto records = store->List();
  if (!records) return ReportError(records.error());
  if (args.output == "json") {
    auto doc = nlohmann::json::array();
    for (const auto& r : *records) doc.push_back(nlohmann::json::parse(image::RecordToJson(r, -1)));
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("%-24s %-12s %8s  %-20s  %s\n", "NAME", "DIGEST", "SIZE", "CREATED", "SOURCE");
  for (const auto& r : *records) {
    std::printf("%-24s %-12s %8s  %-20s  %s\n", r.name.c_str(), r.digest.substr(0, 12).c_str(),
                FormatSize(r.size).c_str(), r.created.c_str(), r.source.c_str());
  }
  return 0;
}

int RunInspect(const GlobalOptions& global, const ImageArgs& args) {
  auto store = Prepare(global);
  if (!store) return ReportError(store.error());
  auto record = store->Get(args.target);
  if (!record) return ReportError(record.error());
  std::printf("%s\n", image::RecordToJson(*record).c_str());
  return 0;
}

int RunRemove(const GlobalOptions& global, const ImageArgs& args) {
  auto store = Prepare(global);
  if (!store) return ReportError(store.error());
  int code = 0;
  for (const auto& name : args.names) {
    auto removed = [&]() -> Result<bool> {
      auto record = store->Get(name);
      std::string digest;
      if (record) {
        digest = record->digest;
      } else if (record.error().code() == ErrorCode::kCorrupt) {
        // A broken blob must still be removable: take the digest from the ref alone.
        auto all = store->List();
        if (all) {
          for (const auto& r : *all) {
            if (r.name == name) digest = r.digest;
          }
        }
        if (digest.empty()) return Fail(record.error());
      } else {
        return Fail(record.error());
      }
      // An idle (lingering) mount would keep the deleted blob alive: unmount it first.
      EMBER_TRY(image::CleanupStaleMounts(global.run_dir, std::chrono::seconds(0), digest)
                    .map([](size_t) {}));
      // Holding the mount mutex keeps a sandbox from starting on the image while it goes away.
      EMBER_ASSIGN_OR_RETURN(auto guard, image::LockImageMount(global.run_dir, digest));
      if (guard.users() > 0) {
        return Fail(ErrorCode::kBusy, "image " + name + " is in use by " +
                                          std::to_string(guard.users()) + " sandbox(es)");
      }
      return store->Remove(name, digest);
    }();
    if (!removed) {
      code = ReportError(removed.error());
      continue;
    }
    std::fprintf(stderr, "removed image %s%s\n", name.c_str(),
                 *removed ? "" : " (its content stays: another name uses it)");
  }
  return code;
}

int RunUnmount(const GlobalOptions& global) {
  auto unmounted = image::CleanupStaleMounts(global.run_dir);
  if (!unmounted) return ReportError(unmounted.error());
  std::fprintf(stderr, "unmounted %zu idle image(s); images in use stay mounted\n", *unmounted);
  return 0;
}

}  // namespace

void RegisterImageCommands(CLI::App& app, GlobalOptions& global, int* exit_code) {
  auto args = std::make_shared<ImageArgs>();
  CLI::App* image =
      app.add_subcommand("image", "build, import and manage read-only root filesystems");
  image->require_subcommand(1);

  CLI::App* build = image->add_subcommand(
      "build", "build an image from a recipe with mmdebstrap (known recipes: python3.11)");
  build->add_option("recipe", args->target, "recipe name, e.g. python3.11")->required();
  build->add_option("--name", args->name, "image name (default: the recipe's name)");
  build->add_option("--include", args->include, "extra Debian packages to install")->delimiter(',');
  build->add_flag("--force", args->force, "replace an existing image of the same name");
  build->callback([&global, args, exit_code] { *exit_code = RunBuild(global, *args); });

  CLI::App* import = image->add_subcommand(
      "import", "import a docker-archive, OCI archive, rootfs tarball or directory");
  import->add_option("source", args->target, "archive file or directory")->required();
  import->add_option("--name", args->name, "image name (default: from the tag or file name)");
  import->add_flag("--force", args->force, "replace an existing image of the same name");
  import->callback([&global, args, exit_code] { *exit_code = RunImport(global, *args);
});

CLI::App* ls = image->add_subcommand("ls", "list images");
ls->add_option("--output,-o", args->output, "table or json")->capture_default_str();
ls->callback([&global, args, exit_code] { *exit_code = RunList(global, *args); });

CLI::App* inspect = image->add_subcommand("inspect", "show an image's record as JSON");
inspect->add_option("name", args->target, "image name")->required();
inspect->callback([&global, args, exit_code] { *exit_code = RunInspect(global, *args); });

CLI::App* rm = image->add_subcommand("rm", "remove images (refused while a sandbox uses one)");
rm->add_option("names", args->names, "image names")->required();
rm->callback([&global, args, exit_code] { *exit_code = RunRemove(global, *args); });

CLI::App* unmount = image->add_subcommand(
    "unmount", "unmount idle images now instead of after EMBER_IMAGE_LINGER (default 30s)");
unmount->callback([&global, exit_code] { *exit_code = RunUnmount(global); });
}  // namespace ember::cli

}  // namespace ember::cli
