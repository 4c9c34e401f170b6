// The applying half of unpacking (layer_plan.h decides): writes planned entries under a root
// directory. Every path is resolved from the root's fd one component at a time with O_NOFOLLOW,
// so even if the plan were wrong the writer could not be steered outside the root by a symlink.
// Ownership is the numeric uid/gid stored in the archive; modes, mtimes and xattrs (files and
// directories) are kept. Directory mtimes are set in Finish(), after all children exist.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "image/layer_plan.h"

struct archive;
struct archive_entry;

namespace ember::image {

class TreeWriter {
 public:
  // `root` must exist and is where the tree is written.
  static Result<TreeWriter> Open(const std::string& root);

  // Applies one planned entry; `a`/`e` give its metadata and data.
  Status Apply(const PlannedEntry& entry, struct archive* a, struct archive_entry* e);
  // Sets directory mtimes (entries' own, 0 for implicit parents) now that nothing more changes.
  Status Finish();

 private:
  TreeWriter(std::string root, UniqueFd root_fd)
      : root_(std::move(root)), root_fd_(std::move(root_fd)) {}
  // An O_PATH fd of directory `rel` ("" is the root), never following symlinks.
  Result<UniqueFd> OpenDir(const std::string& rel) const;
  // Opens the parent of `rel`; `name` receives the last component.
  Result<UniqueFd> OpenParent(const std::string& rel, std::string* name) const;
  Status Remove(const std::string& rel);
  Status MakeDir(const std::string& rel, mode_t mode, uid_t uid, gid_t gid);
  Status WriteFile(int parent, const std::string& name, const std::string& rel, struct archive* a,
                   struct archive_entry* e);
  Status SetXattrs(int fd, const std::string& rel, struct archive_entry* e);

  std::string root_;
  UniqueFd root_fd_;
  std::map<std::string, struct timespec> dir_times_;
};

// Removes everything inside `dir` (not `dir` itself) without following symlinks or crossing
// mounts; used to leave nothing behind after a refused import.
Status EmptyDirectory(const std::string& dir);

}  // namespace ember::image
