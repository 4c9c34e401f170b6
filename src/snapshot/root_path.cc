#include "snapshot/root_path.h"

#include <vector>

namespace ember::snapshot {

Result<RootedFile> ResolveInRoot(const std::string& root, const std::string& shown,
                                 const struct stat& held, const std::string& what) {
  if (shown.empty() || shown[0] != '/') {
    return Fail(ErrorCode::kUnsupported,
                what + " is '" + shown + "', not a path ember can reopen at restore");
  }
  if (shown.ends_with(" (deleted)")) {
    return Fail(ErrorCode::kUnsupported, what + " is the deleted file " + shown +
                                             "; ember cannot checkpoint a file that has no path");
  }
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (base == "/") base.clear();
  std::vector<std::string> candidates = {shown};
  if (!base.empty() && !base.starts_with("/proc/") && shown.starts_with(base + "/")) {
    candidates.push_back(shown.substr(base.size()));
  }
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
