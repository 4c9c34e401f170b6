#include "snapshot/root_path.h"

#include <unistd.h>

#include <vector>

namespace ember::snapshot {
namespace {

std::string WithoutTrailingSlash(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
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
    if (st.st_dev == held.st_dev && st.st_ino == held.st_ino) {
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
