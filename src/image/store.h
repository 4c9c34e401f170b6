// The content-addressed image store under the data dir (default /var/lib/ember):
//
//   images/<xxh3-128 hex>.erofs   blobs, named by the hash of their bytes, read-only (0444)
//   refs/<name>.json              one per image name: digest, size, origin, counts
//   tmp/<purpose>-<pid>-<rand>/   staging for a build or import in progress, and beside it
//   tmp/<...>.lock                the flock its owner holds; an unlocked staging dir is stale
//   lock                          flock held while refs or blobs change
//
// A blob is written in tmp/, fsynced and renamed into images/; the ref is written last (temp
// file, fsync, rename). So a crash leaves either no image or a whole one: at worst a staging
// dir or an unreferenced blob, which Open() removes. Two names with the same content share one
// blob; removing a name removes its blob when no other ref points at it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::image {

struct ImageRecord {
  std::string name;
  std::string digest;     // 32 hex digits
  std::string blob_path;  // absolute path of the EROFS file
  uint64_t size = 0;      // bytes of the blob
  std::string created;    // RFC 3339, UTC
  std::string source;     // what it was made from: a path, or the recipe's name
  std::string kind;       // build, docker-archive, oci-archive, tarball, directory
  std::string recipe;     // builds only
  uint32_t layers = 0;
  uint64_t files = 0;  // entries in the tree, not counting the root
};

// The ref file's JSON (also what `ember image inspect` prints).
std::string RecordToJson(const ImageRecord& record, int indent = 2);

// A staging directory, removed with its contents (and anything left mounted in it) on
// destruction unless the store already consumed what it needed.
class StagingDir {
 public:
  StagingDir() = default;
  StagingDir(std::string path, std::string lock_path, UniqueFd lock)
      : path_(std::move(path)), lock_path_(std::move(lock_path)), lock_(std::move(lock)) {}
  StagingDir(StagingDir&&) noexcept = default;
  StagingDir& operator=(StagingDir&& other) noexcept;
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  ~StagingDir() { Remove(); }

  const std::string& path() const { return path_; }
  // The fd holding the staging lock: a child that inherits it keeps the dir from being collected.
  int lock_fd() const { return lock_.get(); }
  void Remove();

 private:
  std::string path_;
  std::string lock_path_;
  UniqueFd lock_;
};

class Store {
 public:
  // Creates missing directories, removes stale staging dirs, temp ref files and unreferenced
  // blobs. Fails with one line when the data dir cannot be used.
  // `maintain`: also remove what crashed writers left (stale staging dirs, temp refs, orphan
  // blobs), under the store lock. `ember run` only reads the store and skips that (it is a
  // directory scan on every start); every `ember image` command does it.
  static Result<Store> Open(const std::string& data_dir, bool maintain = true);

  const std::string& data_dir() const { return data_dir_; }
  std::string BlobPath(const std::string& digest) const;

  // The image called `name`, after checking that its blob exists with the recorded size.
  Result<ImageRecord> Get(const std::string& name) const;
  // All images, sorted by name (refs that fail to parse are skipped with a warning).
  Result<std::vector<ImageRecord>> List() const;

  Result<StagingDir> CreateStaging(std::string_view purpose) const;

  struct Committed {
    ImageRecord record;
    std::optional<std::string> replaced_digest;  // the digest `name` pointed at before
    bool blob_was_present = false;               // the same content was already stored
  };
  // Moves `erofs_file` (inside a staging dir) into the store and points `meta.name` at it; fills
  // digest, size, blob_path, created. An existing name is refused (kAlreadyExists) unless
  // `replace`.
  Result<Committed> Commit(const std::string& erofs_file, ImageRecord meta, bool replace);

  // Removes the ref `name` if it still points at `expected_digest`, and the blob if no other ref
  // uses it. Returns whether the blob was removed.
  Result<bool> Remove(const std::string& name, const std::string& expected_digest);

 private:
  explicit Store(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  std::string RefPath(const std::string& name) const;
  Result<ImageRecord> ReadRef(const std::string& name) const;
  Status CleanTmp() const;
  Status CollectUnreferencedBlobs() const;
  Result<UniqueFd> LockStore() const;

  std::string data_dir_;
};

}  // namespace ember::image
