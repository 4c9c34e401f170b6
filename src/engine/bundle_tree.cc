#include "engine/bundle_tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "base/units.h"
#include "engine/bundle.h"
#include "image/tar_reader.h"

namespace ember::engine {
namespace {

Error TooManyEntries() {
  return Error(ErrorCode::kResourceExhausted,
               "the bundle has more than " + std::to_string(kMaxBundleEntries) +
                   " files, directories and symlinks (the limit for a function bundle)");
}
Error TooLarge() {
  return Error(ErrorCode::kResourceExhausted, "the bundle holds more than " +
                                                  FormatSize(kMaxBundleBytes) +
                                                  "iB of files (the limit for a function bundle)");
}
Error BadType(const std::string& path, const char* type) {
  return Error(ErrorCode::kInvalidArgument, "bundle entry '" + path + "' is " + type +
                                                ": a bundle may hold only files, directories "
                                                "and symlinks");
}

struct HashStateFreer {
  void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
};

class Normalizer {
 public:
  Normalizer() : state_(XXH3_createState()) { XXH3_128bits_reset(state_.get()); }

  Status Directory(int dir_fd, const std::string& rel) {
    EMBER_TRY(Own(dir_fd, 0755, rel));
    EMBER_ASSIGN_OR_RETURN(auto names, ListDirectoryAt(dir_fd, "bundle directory '" + rel + "'"));
    for (const auto& name : names) {
      std::string path = rel.empty() ? name : rel + "/" + name;
      struct stat st {};
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("stat bundle entry '" + path + "'");
      }
      if (++entries_ > kMaxBundleEntries) return Fail(TooManyEntries());
      if (S_ISDIR(st.st_mode)) {
        Hash("d", path, "");
        int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return FailErrno("open bundle directory '" + path + "'");
        UniqueFd child(fd);
        EMBER_TRY(Directory(child.get(), path));
      } else if (S_ISREG(st.st_mode)) {
        EMBER_TRY(File(dir_fd, name, path));
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(4096, '\0');
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0) return FailErrno("readlink bundle entry '" + path + "'");
        target.resize(static_cast<size_t>(n));
        if (::fchownat(dir_fd, name.c_str(), ::geteuid(), ::getegid(), AT_SYMLINK_NOFOLLOW) != 0) {
          return FailErrno("chown bundle entry '" + path + "'");
        }
        Hash("l", path, target);
      } else {
        return Fail(BadType(path, ModeTypeName(st.st_mode)));
      }
    }
    return Ok();
  }

  BundleTree Finish() {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_.get()));
    static const char kHex[] = "0123456789abcdef";
    BundleTree tree;
    for (unsigned char byte : canonical.digest) {
      tree.digest.push_back(kHex[byte >> 4]);
      tree.digest.push_back(kHex[byte & 0xf]);
    }
    tree.entries = entries_;
    tree.bytes = bytes_;
    return tree;
  }

 private:
  // Owner, mode, no extended attributes.
  static Status Own(int fd, mode_t mode, const std::string& rel) {
    std::string shown = rel.empty() ? "the bundle's root" : "bundle entry '" + rel + "'";
    struct stat st {};
    if (::fstat(fd, &st) != 0) return FailErrno("stat " + shown);
    if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
        ::fchown(fd, ::geteuid(), ::getegid()) != 0) {
      return FailErrno("chown " + shown);
    }
    // chown may have cleared set-id bits; chmod sets the mode whatever it was.
    if ((st.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0) return FailErrno("chmod " + shown);
    std::vector<char> names(4096);
    ssize_t n = ::flistxattr(fd, names.data(), names.size());
    if (n < 0 && errno == ERANGE) {
      names.resize(65536);
      n = ::flistxattr(fd, names.data(), names.size());
    }
    for (ssize_t i = 0; i < n;) {
      const char* name = names.data() + i;
      if (::fremovexattr(fd, name) != 0 && errno != ENODATA && errno != ENOTSUP) {
        return FailErrno("remove xattr " + std::string(name) + " of " + shown);
      }
      i += static_cast<ssize_t>(std::char_traits<char>::length(name)) + 1;
    }
    return Ok();
  }

  Status File(int dir_fd, const std::string& name, const std::string& path) {
    int raw = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (raw < 0) return FailErrno("open bundle entry '" + path + "'");
    UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return FailErrno("stat bundle entry '" + path + "'");
    bytes_ += static_cast<uint64_t>(st.st_size);
    if (bytes_ > kMaxBundleBytes) return Fail(TooLarge());
    mode_t mode = (st.st_mode & 0111) != 0 ? 0755 : 0644;
    EMBER_TRY(Own(fd.get(), mode, path));
    Hash(mode == 0755 ? "x" : "f", path, std::to_string(st.st_size));
    std::vector<char> buf(1 << 16);
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return FailErrno("read bundle entry '" + path + "'");
      if (n == 0) break;
      XXH3_128bits_update(state_.get(), buf.data(), static_cast<size_t>(n));
    }
    return Ok();
  }

  // Fields are NUL-separated so no two different trees feed the same bytes.
  void Hash(std::string_view type, const std::string& path, const std::string& extra) {
    std::string record = std::string(type) + '\0' + path + '\0' + extra + '\0';
    XXH3_128bits_update(state_.get(), record.data(), record.size());
  }

  std::unique_ptr<XXH3_state_t, HashStateFreer> state_;
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

Status ScanBundleTar(const std::string& path) {
  auto a = image::OpenTar(path);
  if (!a) {
    // "open PATH: why": the path is a staging file the client never saw.
    std::string why = a.error().message();
    if (size_t cut = why.find(": "); cut != std::string::npos) why.erase(0, cut + 2);
    return Fail(ErrorCode::kInvalidArgument, "the bundle is not a tar archive: " + why);
  }
  uint64_t entries = 0;
  uint64_t bytes = 0;
  for (;;) {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(a->get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return Fail(ErrorCode::kInvalidArgument, std::string("the bundle is not a readable tar: ") +
                                                   archive_error_string(a->get()));
    }
    std::string name = archive_entry_pathname(e) != nullptr ? archive_entry_pathname(e) : "";
    if (++entries > kMaxBundleEntries) return Fail(TooManyEntries());
    bool hardlink = archive_entry_hardlink(e) != nullptr;
    switch (archive_entry_filetype(e)) {
      case AE_IFREG:
        if (!hardlink)
          bytes += static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
        if (bytes > kMaxBundleBytes) return Fail(TooLarge());
        break;
      case AE_IFDIR:
      case AE_IFLNK:
        break;
      case AE_IFIFO:
        return Fail(BadType(name, "a fifo"));
      case AE_IFSOCK:
        return Fail(BadType(name, "a socket"));
      case AE_IFCHR:
        return Fail(BadType(name, "a character device"));
      case AE_IFBLK:
        return Fail(BadType(name, "a block device"));
      default:
        if (!hardlink) return Fail(BadType(name, "of an unknown type"));
    }
    if (archive_read_data_skip(a->get()) < ARCHIVE_WARN) {
      return Fail(ErrorCode::kInvalidArgument, "the bundle is not a readable tar: entry '" + name +
                                                   "': " + archive_error_string(a->get()));
    }
  }
  return Ok();
}

Result<BundleTree> NormalizeBundleTree(const std::string& dir) {
  int raw = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return FailErrno("open " + dir);
  UniqueFd root(raw);
  Normalizer normalizer;
  EMBER_TRY(normalizer.Directory(root.get(), ""));
  return normalizer.Finish();
}

const char* ModeTypeName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "of an unknown type";
}

}  // namespace ember::engine
