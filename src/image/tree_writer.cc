#include "image/tree_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/fs.h"

namespace ember::image {
namespace {

constexpr int kDirFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

struct timespec EntryMtime(struct archive_entry* e) {
  struct timespec ts {};
  if (archive_entry_mtime_is_set(e)) {
    ts.tv_sec = archive_entry_mtime(e);
    ts.tv_nsec = archive_entry_mtime_nsec(e);
  }
  return ts;
}

}  // namespace

Status EmptyDirectory(const std::string& dir) {
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(dir));
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  for (const auto& name : names) EMBER_TRY(RemoveTreeAt(fd.get(), name, dir + "/" + name));
  return Ok();
}

Result<TreeWriter> TreeWriter::Open(const std::string& root) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(root, kDirFlags));
  return TreeWriter(root, std::move(fd));
}

Result<UniqueFd> TreeWriter::OpenDir(const std::string& rel) const {
  UniqueFd current(::fcntl(root_fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!current) return FailErrno("dup root fd");
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    std::string part = rel.substr(pos, slash - pos);
    int next = ::openat(current.get(), part.c_str(), kDirFlags);
    if (next < 0) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return Fail(
            ErrorCode::kInvalidArgument,
            "'" + rel.substr(0, slash) + "' is not a directory (symlinks are never followed)");
      }
      return FailErrno("open " + root_ + "/" + rel.substr(0, slash));
    }
    current.reset(next);
    pos = slash + 1;
  }
  return current;
}

Result<UniqueFd> TreeWriter::OpenParent(const std::string& rel, std::string* name) const {
  auto slash = rel.rfind('/');
  *name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  return OpenDir(slash == std::string::npos ? "" : rel.substr(0, slash));
}

Status TreeWriter::Remove(const std::string& rel) {
  std::string name;
  EMBER_ASSIGN_OR_RETURN(auto parent, OpenParent(rel, &name));
  EMBER_TRY(RemoveTreeAt(parent.get(), name, root_ + "/" + rel));
  dir_times_.erase(rel);
  return Ok();
}

Status TreeWriter::MakeDir(const std::string& rel, mode_t mode, uid_t uid, gid_t gid) {
  UniqueFd dir;
  if (rel.empty()) {
    dir.reset(::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  } else {
    std::string name;
    EMBER_ASSIGN_OR_RETURN(auto parent, OpenParent(rel, &name));
    if (::mkdirat(parent.get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
      return FailErrno("mkdir " + root_ + "/" + rel);
    }
    dir.reset(
        ::openat(parent.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!dir) return FailErrno("open directory " + root_ + "/" + rel);
  if (::fchown(dir.get(), uid, gid) != 0) return FailErrno("chown " + root_ + "/" + rel);
  if (::fchmod(dir.get(), mode & 07777) != 0) return FailErrno("chmod " + root_ + "/" + rel);
  return Ok();
}

Status TreeWriter::SetXattrs(int fd, const std::string& rel, struct archive_entry* e) {
  if (archive_entry_xattr_reset(e) == 0) return Ok();
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (::fsetxattr(fd, name, value, size, 0) != 0 && errno != ENOTSUP) {
      return FailErrno("set xattr " + std::string(name) + " on " + root_ + "/" + rel);
    }
  }
  return Ok();
}

Status TreeWriter::WriteFile(int parent, const std::string& name, const std::string& rel,
                             struct archive* a, struct archive_entry* e) {
  std::string shown = root_ + "/" + rel;
  UniqueFd fd(
      ::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return FailErrno("create " + shown);
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return Fail(ErrorCode::kCorrupt, "read data of '" + rel + "': " + archive_error_string(a));
    }
    const char* p = static_cast<const char*>(buf);
    while (size > 0) {
      ssize_t n = ::pwrite(fd.get(), p, size, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return FailErrno("write " + shown);
      }
      p += n;
      offset += n;
      size -= static_cast<size_t>(n);
    }
  }
  // Sparse files end in a hole that no data block covers.
  if (archive_entry_size_is_set(e) && ::ftruncate(fd.get(), archive_entry_size(e)) != 0) {
    return FailErrno("truncate " + shown);
  }
  // chown before chmod: chown clears set-id bits.
  if (::fchown(fd.get(), archive_entry_uid(e), archive_entry_gid(e)) != 0)
    return FailErrno("chown " + shown);
  if (::fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) return FailErrno("chmod " + shown);
  EMBER_TRY(SetXattrs(fd.get(), rel, e));
  struct timespec times[2] = {EntryMtime(e), EntryMtime(e)};
  if (::futimens(fd.get(), times) != 0) return FailErrno("set times of " + shown);
  return Ok();
}

Status TreeWriter::Apply(const PlannedEntry& entry, struct archive* a, struct archive_entry* e) {
  for (const auto& path : entry.removals) EMBER_TRY(Remove(path));
  if (entry.kind != PlannedEntry::Kind::kWrite) return Ok();
  for (const auto& parent : entry.new_parents) {
    EMBER_TRY(MakeDir(parent, 0755, 0, 0));
    dir_times_[parent] = {};
  }
  const std::string& rel = entry.path;
  std::string shown = root_ + "/" + rel;
  uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  if (entry.type == EntryType::kDir) {
    EMBER_TRY(MakeDir(rel, archive_entry_perm(e), uid, gid));
    if (archive_entry_xattr_count(e) > 0) {
      EMBER_ASSIGN_OR_RETURN(auto dir, OpenFile(shown, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      EMBER_TRY(SetXattrs(dir.get(), rel, e));
    }
    dir_times_[rel] = EntryMtime(e);
    return Ok();
  }
  std::string name;
  EMBER_ASSIGN_OR_RETURN(auto parent, OpenParent(rel, &name));
  struct timespec times[2] = {EntryMtime(e), EntryMtime(e)};
  switch (entry.type) {
    case EntryType::kFile:
      return WriteFile(parent.get(), name, rel, a, e);
    case EntryType::kSymlink: {
      const char* target = archive_entry_symlink(e);
      if (::symlinkat(target ? target : "", parent.get(), name.c_str()) != 0) {
        return FailErrno("symlink " + shown);
      }
      if (::fchownat(parent.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("chown " + shown);
      }
      if (::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("set times of " + shown);
      }
      return Ok();
    }
    case EntryType::kHardlink: {
      std::string target_name;
      EMBER_ASSIGN_OR_RETURN(auto target_parent, OpenParent(entry.link_target, &target_name));
      // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
      if (::linkat(target_parent.get(), target_name.c_str(), parent.get(), name.c_str(), 0) != 0) {
        return FailErrno("hardlink " + shown + " to " + entry.link_target);
      }
      return Ok();
    }
    case EntryType::kFifo: {
      if (::mknodat(parent.get(), name.c_str(), S_IFIFO | 0600, 0) != 0)
        return FailErrno("mkfifo " + shown);
      if (::fchownat(parent.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("chown " + shown);
      }
      if (::fchmodat(parent.get(), name.c_str(), archive_entry_perm(e) & 07777, 0) != 0) {
        return FailErrno("chmod " + shown);
      }
      if (::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return FailErrno("set times of " + shown);
      }
      return Ok();
    }
    default:
      return Fail(ErrorCode::kInternal,
                  "cannot write a " + std::string(EntryTypeName(entry.type)) + " (" + rel + ")");
  }
}

Status TreeWriter::Finish() {
  for (const auto& [rel, mtime] : dir_times_) {
    struct timespec times[2] = {mtime, mtime};
    UniqueFd dir;
    if (rel.empty()) {
      dir.reset(::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    } else {
      std::string name;
      auto parent = OpenParent(rel, &name);
      if (!parent) continue;  // removed by a later layer
      dir.reset(
          ::openat(parent->get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir && errno == ENOENT) continue;
    }
    if (!dir) return FailErrno("open " + root_ + "/" + rel);
    if (::futimens(dir.get(), times) != 0) return FailErrno("set times of " + root_ + "/" + rel);
  }
  return Ok();
}

}  // namespace ember::image
