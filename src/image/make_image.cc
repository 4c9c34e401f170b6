#include "image/make_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/units.h"
#include "image/erofs.h"
#include "image/name.h"
#include "image/source.h"
#include "image/unpack.h"

namespace ember::image {
namespace {

Status ScanAt(int dirfd, const std::string& rel, TreeScan* scan) {
  int fd = ::openat(dirfd, rel.empty() ? "." : rel.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FailErrno("open " + rel);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return FailErrno("fdopendir " + rel);
  }
  std::vector<std::string> subdirs;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string_view name = ent->d_name;
    if (name == "." || name == "..") continue;
    std::string path = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
    ++scan->entries;
    unsigned char type = ent->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st {};
      if (::fstatat(::dirfd(dir), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        type = S_ISDIR(st.st_mode)   ? DT_DIR
               : S_ISCHR(st.st_mode) ? DT_CHR
               : S_ISBLK(st.st_mode) ? DT_BLK
                                     : DT_REG;
      }
    }
    if (type == DT_DIR) subdirs.push_back(path);
    if (type == DT_CHR || type == DT_BLK) scan->devices.push_back(path);
  }
  ::closedir(dir);
  for (const auto& sub : subdirs) EMBER_TRY(ScanAt(dirfd, sub, scan));
  return Ok();
}

// Name chosen by the user, else derived; checked before any expensive work.
Result<std::string> ChooseName(const Store& store, const std::string& given,
                               const std::string& derived, const std::string& source, bool force) {
  std::string name = given.empty() ? derived : given;
  if (name.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "cannot derive an image name from " + source + "; pass --name");
  }
  EMBER_TRY(ValidateImageName(name));
  if (!force) {
    auto existing = store.Get(name);
    if (existing || existing.error().code() == ErrorCode::kCorrupt) {
      return Fail(ErrorCode::kAlreadyExists,
                  "image '" + name +
                      "' already exists; use --force to replace it or choose another --name");
    }
  }
  return name;
}

Result<Store::Committed> PackAndCommit(Store& store, const std::string& tree,
                                       const std::string& out, ImageRecord meta, bool force,
                                       const ProgressFn& progress) {
  EMBER_ASSIGN_OR_RETURN(auto scan, ScanTree(tree));
  meta.files = scan.entries - scan.devices.size();
  if (progress) {
    progress("packing " + std::to_string(meta.files) + " entries into EROFS" +
             (scan.devices.empty() ? ""
                                   : " (leaving out " + std::to_string(scan.devices.size()) +
                                         " device nodes: sandboxes get their own /dev)"));
  }
  EMBER_TRY(PackErofs(tree, out, scan.devices));
  if (progress) progress("storing image " + meta.name);
  return store.Commit(out, std::move(meta), force);
}

}  // namespace

Result<TreeScan> ScanTree(const std::string& dir) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  TreeScan scan;
  EMBER_TRY_CTX(ScanAt(fd.get(), "", &scan), "scan " + dir);
  return scan;
}

Result<Store::Committed> ImportImage(Store& store, const std::string& source,
                                     const ImportOptions& options, const ProgressFn& progress) {
  std::string context = "import " + source;
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return FailErrno(context);
  // Cheap checks of a user-given name happen before reading a possibly large archive.
  if (!options.name.empty()) {
    EMBER_TRY(ChooseName(store, options.name, "", source, options.force));
  }
  EMBER_ASSIGN_OR_RETURN(auto staging, store.CreateStaging("import"));
  std::string work = staging.path() + "/work", rootfs = staging.path() + "/rootfs";
  EMBER_TRY(MakeDirs(work, 0700));
  if (progress) progress("reading " + source);
  auto prepared = PrepareSource(source, work);
  if (!prepared) return Fail(std::move(prepared).error().Context(context));

  std::string derived = prepared->suggested_name.empty()
                            ? NameFromPath(source)
                            : NameFromRepoTag(prepared->suggested_name);
  EMBER_ASSIGN_OR_RETURN(auto name,
                         ChooseName(store, options.name, derived, source, options.force));
  ImageRecord meta;
  meta.name = name;
  meta.source = source;
  meta.kind = std::string(SourceKindName(prepared->kind));

  std::string tree = source;  // directories are packed in place, ids and all
  if (prepared->kind == SourceKind::kDirectory) {
    meta.layers = 1;
  } else {
    EMBER_TRY(MakeDirs(rootfs, 0755));
    if (progress) {
      progress("unpacking " + std::string(SourceKindName(prepared->kind)) + " (" +
               std::to_string(prepared->layer_files.size()) + " layer(s))");
    }
    bool layered = prepared->kind != SourceKind::kTarball;
    auto unpacked = UnpackLayers(prepared->layer_files, layered, rootfs);
    if (!unpacked) return Fail(std::move(unpacked).error().Context(context));
    meta.layers = unpacked->layers;
    tree = rootfs;
    (void)RemoveTree(work);  // layer copies are no longer needed; free the space before packing
  }
  auto committed = PackAndCommit(store, tree, staging.path() + "/image.erofs", std::move(meta),
                                 options.force, progress);
  if (!committed) return Fail(std::move(committed).error().Context(context));
  return committed;
}

Result<Store::Committed> BuildImage(Store& store, const std::string& recipe_name,
                                    const BuildOptions& options, const ProgressFn& progress) {
  EMBER_ASSIGN_OR_RETURN(auto recipe, FindRecipe(recipe_name));
  std::string context = "build image from recipe " + recipe.name;
  EMBER_ASSIGN_OR_RETURN(auto name,
                         ChooseName(store, options.name, recipe.name, recipe.name, options.force));
  Mirror mirror = HostDebianMirror(recipe.suite);
  if (progress) {
    progress("resolving: Debian " + recipe.suite + " from " + mirror.uri + " (" +
             (mirror.origin == "default" ? "default mirror" : "from " + mirror.origin) + ")");
  }
  EMBER_ASSIGN_OR_RETURN(auto staging, store.CreateStaging("build"));
  std::string rootfs = staging.path() + "/rootfs";
  if (progress) {
    std::string packages;
    for (const auto& p : recipe.packages) packages += " " + p;
    for (const auto& p : options.extra_packages) packages += " " + p;
    progress("downloading and installing:" + packages + " (mmdebstrap, " + recipe.suite +
             " minbase)");
  }
  auto built = RunMmdebstrap(
      recipe, mirror, options.extra_packages, rootfs,
      [&](std::string_view line) {
        if (progress) progress("  " + std::string(line));
      },
      staging.lock_fd());
  if (!built) return Fail(std::move(built).error().Context(context));
  ImageRecord meta;
  meta.name = name;
  meta.source = "recipe " + recipe.name + " (" + recipe.suite + ", " + mirror.uri + ")";
  meta.kind = "build";
  meta.recipe = recipe.name;
  meta.layers = 1;
  auto committed = PackAndCommit(store, rootfs, staging.path() + "/image.erofs", std::move(meta),
                                 options.force, progress);
  if (!committed) return Fail(std::move(committed).error().Context(context));
  return committed;
}

}  // namespace ember::image
