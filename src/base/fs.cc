#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/units.h"

namespace ember {

Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return FailErrno("open " + path);
  return UniqueFd(fd);
}

Result<std::string> ReadFile(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDONLY));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FailErrno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

static Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FailErrno("write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Status WriteControlFile(const std::string& path, std::string_view data) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_WRONLY | O_TRUNC));
  // Control files take one write; a short write is an error, not something to continue.
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) return FailErrno("write '" + std::string(data) + "' to " + path);
  return Ok();
}

Status SyncDirectory(const std::string& dir) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0) return FailErrno("fsync " + dir);
  return Ok();
}

static std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status RenameDurably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return FailErrno("rename " + from + " to " + to);
  return SyncDirectory(DirName(to));
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + RandomHex();
  {
    EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
    auto written = WriteAll(fd.get(), data, tmp);
    if (written && ::fsync(fd.get()) != 0) written = FailErrno("fsync " + tmp);
    if (!written) {
      ::unlink(tmp.c_str());
      return written;
    }
  }
  auto renamed = RenameDurably(tmp, path);
  if (!renamed) ::unlink(tmp.c_str());
  return renamed;
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Fail(ErrorCode::kInvalidArgument, "mkdir: empty path");
  // Usually there already: one stat instead of a mkdir per component (every `ember run` makes
  // sure of half a dozen directories before its sandbox starts).
  struct stat existing {};
  if (::stat(path.c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) return Ok();
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return FailErrno("mkdir " + partial);
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FailErrno("stat " + path);
  if (!S_ISDIR(st.st_mode))
    return Fail(ErrorCode::kAlreadyExists, path + " exists and is not a directory");
  return Ok();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {

// Reads and closes `dir`.
std::vector<std::string> ReadEntries(DIR* dir) {
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string_view name = ent->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

}  // namespace

Result<std::vector<std::string>> ListDirectory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return FailErrno("opendir " + path);
  return ReadEntries(dir);
}

Result<std::vector<std::string>> ListDirectoryAt(int dir_fd, const std::string& shown) {
  int fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);  // fdopendir takes the fd it is given
  if (fd < 0) return FailErrno("dup " + shown);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return FailErrno("opendir " + shown, err);
  }
  std::vector<std::string> names = ReadEntries(dir);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

Status RemoveTreeOnDevice(int parent_fd, const std::string& name, const std::string& shown,
                          dev_t root_dev) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Ok();
    return FailErrno("stat " + shown);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return FailErrno("unlink " + shown);
    }
    return Ok();
  }
  if (st.st_dev != root_dev) {
    return Fail(ErrorCode::kBusy, "refusing to remove " + shown + ": it is a mount point");
  }
  int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FailErrno("open " + shown);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return FailErrno("fdopendir " + shown);
  }
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string_view n = ent->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  Status status = Ok();
  for (const auto& child : names) {
    status = RemoveTreeOnDevice(dirfd(dir), child, shown + "/" + child, root_dev);
    if (!status) break;
  }
  ::closedir(dir);
  EMBER_TRY(status);
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return FailErrno("rmdir " + shown);
  }
  return Ok();
}

}  // namespace

Status RemoveTreeAt(int parent_fd, const std::string& name, const std::string& shown) {
  struct stat parent {};
  if (::fstat(parent_fd, &parent) != 0) return FailErrno("stat parent of " + shown);
  return RemoveTreeOnDevice(parent_fd, name, shown, parent.st_dev);
}

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Ok();
    return FailErrno("stat " + path);
  }
  std::string parent = DirName(path);
  std::string base = path.substr(path.rfind('/') + 1);
  EMBER_ASSIGN_OR_RETURN(auto parent_fd, OpenFile(parent, O_RDONLY | O_DIRECTORY));
  return RemoveTreeOnDevice(parent_fd.get(), base, path, st.st_dev);
}

Result<FileLock> FileLock::Acquire(const std::string& path, Mode mode) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  int op = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
  while (::flock(fd.get(), op) != 0) {
    if (errno != EINTR) return FailErrno("flock " + path);
  }
  return FileLock(std::move(fd));
}

Result<FileLock> FileLock::TryAcquire(const std::string& path, Mode mode) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  int op = (mode == Mode::kShared ? LOCK_SH : LOCK_EX) | LOCK_NB;
  if (::flock(fd.get(), op) != 0) {
    if (errno == EWOULDBLOCK) return Fail(ErrorCode::kBusy, path + " is locked by another process");
    return FailErrno("flock " + path);
  }
  return FileLock(std::move(fd));
}

}  // namespace ember
