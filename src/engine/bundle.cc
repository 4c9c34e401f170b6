#include "engine/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "base/units.h"
#include "engine/bundle_tree.h"
#include "engine/manifest.h"

namespace ember::engine {
namespace {

struct WriterCloser {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFreer {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t AppendToString(struct archive* /*a*/, void* out, const void* buffer, size_t length) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

class Packer {
 public:
  Packer(std::string dir, struct archive* a) : dir_(std::move(dir)), a_(a) {}

  // Packs the entries of directory `dir_fd` (`rel` is its path in the bundle, "" for the root).
  Status PackDirectory(int dir_fd, const std::string& rel) {
    EMBER_ASSIGN_OR_RETURN(auto names, ListDirectoryAt(dir_fd, Shown(rel)));
    for (const auto& name : names) {
      std::string path = rel.empty() ? name : rel + "/" + name;
      struct stat st {};
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("stat " + Shown(path));
      }
      if (S_ISDIR(st.st_mode) && (name == ".git" || name == "__pycache__")) continue;
      if (++entries_ > kMaxBundleEntries) {
        return Fail(ErrorCode::kResourceExhausted,
                    "bundle " + dir_ + " has more than " + std::to_string(kMaxBundleEntries) +
                        " files, directories and symlinks (the limit for a function bundle)");
      }
      if (S_ISREG(st.st_mode)) {
        bytes_ += static_cast<uint64_t>(st.st_size);
        if (bytes_ > kMaxBundleBytes) {
          return Fail(ErrorCode::kResourceExhausted,
                      "bundle " + dir_ + " holds more than " + FormatSize(kMaxBundleBytes) +
                          "iB of files (the limit for a function bundle)");
        }
        EMBER_TRY(PackFile(dir_fd, name, path, st));
      } else if (S_ISDIR(st.st_mode)) {
        EMBER_TRY(WriteHeader(path, st, AE_IFDIR, ""));
        int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return FailErrno("open " + Shown(path));
        UniqueFd child(fd);
        EMBER_TRY(PackDirectory(child.get(), path));
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(4096, '\0');
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0) return FailErrno("readlink " + Shown(path));
        target.resize(static_cast<size_t>(n));
        EMBER_TRY(WriteHeader(path, st, AE_IFLNK, target));
      } else {
        return Fail(ErrorCode::kInvalidArgument,
                    Shown(path) + " is " + ModeTypeName(st.st_mode) +
                        ": a bundle may hold only files, directories and symlinks");
      }
    }
    return Ok();
  }

 private:
  std::string Shown(const std::string& rel) const { return dir_ + "/" + rel; }

  Status WriteHeader(const std::string& path, const struct stat& st, unsigned type,
                     const std::string& symlink, int64_t size = 0) {
    std::unique_ptr<struct archive_entry, EntryFreer> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), st.st_mode & 0777);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    archive_entry_set_size(e.get(), size);
    if (!symlink.empty()) archive_entry_set_symlink(e.get(), symlink.c_str());
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) {
      return Fail(ErrorCode::kIo, "pack " + Shown(path) + ": " + archive_error_string(a_));
    }
    return Ok();
  }

  Status PackFile(int dir_fd, const std::string& name, const std::string& path,
                  const struct stat& st) {
    int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return FailErrno("open " + Shown(path));
    UniqueFd file(fd);
    EMBER_TRY(WriteHeader(path, st, AE_IFREG, "", st.st_size));
    std::vector<char> buf(1 << 16);
    auto left = static_cast<uint64_t>(st.st_size);
    while (left > 0) {
      ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(left, buf.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return FailErrno("read " + Shown(path));
      if (n == 0) {
        return Fail(ErrorCode::kIo, Shown(path) + " shrank while it was being packed; try again");
      }
      if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) != n) {
        return Fail(ErrorCode::kIo, "pack " + Shown(path) + ": " + archive_error_string(a_));
      }
      left -= static_cast<uint64_t>(n);
    }
    return Ok();
  }

  std::string dir_;
  struct archive* a_;
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

Result<std::string> PackBundle(const std::string& dir) {
  EMBER_TRY(LoadBundleManifest(dir));
  EMBER_ASSIGN_OR_RETURN(auto root, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  std::string out;
  std::unique_ptr<struct archive, WriterCloser> a(archive_write_new());
  if (!a) return Fail(ErrorCode::kResourceExhausted, "archive_write_new failed");
  archive_write_set_format_pax_restricted(a.get());
  if (archive_write_open(a.get(), &out, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    return Fail(ErrorCode::kIo, "pack " + dir + ": " + archive_error_string(a.get()));
  }
  Packer packer(dir, a.get());
  EMBER_TRY(packer.PackDirectory(root.get(), ""));
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return Fail(ErrorCode::kIo, "pack " + dir + ": " + archive_error_string(a.get()));
  }
  return out;
}

}  // namespace ember::engine
