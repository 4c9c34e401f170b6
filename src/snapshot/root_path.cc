#include "snapshot/root_path.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <vector>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "snapshot/proc_parsers.h"

namespace ember::snapshot {
namespace {

std::string WithoutTrailingSlash(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

// The file an overlayfs path stands for, as a mapping of it shows it. /proc/PID/maps names a
// mapped overlay file by its path in the overlay but with the device and inode of the layer's
// file (the mapping is of that file), while stat() through the overlay gives the overlay's
// device: so an area of a file from the image never matches its own path by stat alone. Mapping
// the path ourselves and reading our own maps line gives the same identity the process's line
// has. The path is opened inside `root` (RESOLVE_IN_ROOT: its symlinks cannot lead to the host's
// files) and only if it is a regular file.
bool SameMappedFile(const std::string& root, const std::string& path, const struct stat& held) {
  UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return false;
  struct open_how how {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd file(
      static_cast<int>(::syscall(SYS_openat2, dir.get(), path.c_str(), &how, sizeof how)));
  struct stat st {};
  if (!file || ::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  void* mapped = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, file.get(), 0);
  if (mapped == MAP_FAILED) return false;
  bool same = false;
  if (auto text = ReadFile("/proc/self/maps")) {
    if (auto maps = proc::ParseMaps(*text)) {
      for (const proc::MapsEntry& m : *maps) {
        if (m.start != reinterpret_cast<uint64_t>(mapped)) continue;
        same = m.inode == held.st_ino && m.dev_major == major(held.st_dev) &&
               m.dev_minor == minor(held.st_dev);
        break;
      }
    }
  }
  ::munmap(mapped, 4096);
  return same;
}

bool OnOverlay(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == OVERLAYFS_SUPER_MAGIC;
}

}  // namespace

Result<SandboxRoot> SandboxRootOf(pid_t pid, const std::string& option) {
  SandboxRoot root;
  std::string link = "/proc/" + std::to_string(pid) + "/root";
  root.host_path = option.empty() ? link : option;
  char buf[4096];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) return FailErrno("readlink " + link);
  root.as_shown = std::string(buf, static_cast<size_t>(n));
  return root;
}

Result<RootedFile> ResolveInRoot(const SandboxRoot& root, const std::string& shown,
                                 const struct stat& held, const std::string& what) {
  if (shown.empty() || shown[0] != '/') {
    return Fail(ErrorCode::kUnsupported,
                what + " is '" + shown + "', not a path ember can reopen at restore");
  }
  if (shown.ends_with(" (deleted)")) {
    return Fail(ErrorCode::kUnsupported, what + " is the deleted file " + shown +
                                             "; ember cannot checkpoint a file that has no path");
  }
  std::string base = WithoutTrailingSlash(root.host_path);
  std::string prefix = WithoutTrailingSlash(root.as_shown);
  std::vector<std::string> candidates;
  if (!prefix.empty() && shown == prefix) candidates.push_back("/");
  if (!prefix.empty() && shown.starts_with(prefix + "/")) {
    candidates.push_back(shown.substr(prefix.size()));
  }
  candidates.push_back(shown);
  for (const std::string& path : candidates) {
    struct stat st;
    if (::stat((base + path).c_str(), &st) != 0) continue;
    if ((st.st_dev == held.st_dev && st.st_ino == held.st_ino) ||
        (S_ISREG(st.st_mode) && OnOverlay(base + path) &&
         SameMappedFile(base.empty() ? "/" : base, path, held))) {
      return RootedFile{path, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
    }
  }
  return Fail(ErrorCode::kUnsupported,
              what + " is " + shown + ", but that path under the sandbox's root (" +
                  (base.empty() ? "/" : base) +
                  ") is not the file the process holds (it was replaced, or lies outside the "
                  "root)");
}

}  // namespace ember::snapshot
