// The pure half of unpacking archives into a rootfs: given the headers of archive entries, in
// order, decide what each one does to the tree (create, replace, delete through a whiteout, make a
// directory opaque) or why it is refused. The planner keeps a model of the tree built so far, so
// it can tell — without touching the disk — that `a/etc/passwd` would go through the symlink `a`,
// that a hardlink points outside the archive, or which lower-layer entries an opaque directory
// hides. An import plans every layer first and writes only when the whole plan is accepted
// (tree_writer.h applies the same decisions).
//
// Rules (docs/images.md, "Safety"):
//   * paths are relative: absolute paths and any ".." component are refused;
//   * an entry may not sit below a symlink or below a non-directory;
//   * hardlink targets must be earlier entries inside the tree (never a directory);
//   * character and block devices are refused; fifos are allowed; sockets are skipped;
//   * in layered archives (docker, OCI), ".wh.NAME" deletes NAME and ".wh..wh..opq" hides what
//     lower layers put in its directory; other ".wh..wh." names (aufs bookkeeping) are skipped.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::image {

enum class EntryType {
  kFile,
  kDir,
  kSymlink,
  kHardlink,
  kFifo,
  kCharDevice,
  kBlockDevice,
  kSocket
};

std::string_view EntryTypeName(EntryType type);

struct EntryHeader {
  std::string path;  // as stored in the archive
  EntryType type = EntryType::kFile;
  std::string link_target;  // hardlinks: the path of the entry linked to
};

struct PlannedEntry {
  enum class Kind {
    kWrite,     // create `path` (or update the directory's metadata)
    kWhiteout,  // only `removals`
    kOpaque,    // only `removals`: the lower-layer content of the directory
    kSkip,
  };
  Kind kind = Kind::kSkip;
  std::string path;  // normalized: "etc/passwd"; "" is the root itself
  EntryType type = EntryType::kFile;
  std::string link_target;               // normalized, for hardlinks
  std::vector<std::string> removals;     // whole subtrees to delete first, in this order
  std::vector<std::string> new_parents;  // missing parent directories to create, top-down
};

// "./a//b/" -> "a/b"; refuses absolute paths and "..". The error names the path.
Result<std::string> NormalizeEntryPath(std::string_view path);

class LayerPlanner {
 public:
  // `layered`: interpret whiteouts (docker and OCI layers); a plain rootfs tarball is taken
  // literally.
  explicit LayerPlanner(bool layered) : layered_(layered) {}

  // Starts the next layer: opaque directories only hide what earlier layers wrote.
  void BeginLayer();
  // Decides what an entry does; fails (naming the entry) when it breaks a safety rule.
  Result<PlannedEntry> Plan(const EntryHeader& header);

  // Entries in the tree now (not counting the root).
  size_t entry_count() const { return tree_.size(); }
  // The modelled tree: path -> type.
  const std::map<std::string, EntryType>& tree() const { return tree_; }

 private:
  // Erases `path` and everything below it from the model.
  void EraseSubtree(const std::string& path);
  std::vector<std::string> OpaqueRemovals(const std::string& dir);
  bool HasWrittenBelow(const std::string& path) const;

  bool layered_;
  std::map<std::string, EntryType> tree_;
  std::set<std::string> written_in_layer_;
};

}  // namespace ember::image
