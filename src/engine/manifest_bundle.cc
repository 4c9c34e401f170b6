// LoadBundleManifest: the manifest of a bundle directory plus the check that its handler is there,
// so a typo in `handler` fails the deploy instead of every instance's start. The bundle is
// untrusted (it comes from a deploy request): files are opened below the bundle's own fd with
// openat2(RESOLVE_BENEATH), so neither a symlink nor ".." can make ember read or probe a host file.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "engine/manifest.h"
#include "engine/manifest_rules.h"

namespace ember::engine {
namespace {

constexpr size_t kMaxManifestFileBytes = 64 << 10;

enum class Lookup { kFile, kDirectory, kOther, kMissing, kEscapes };

struct Found {
  Lookup kind = Lookup::kMissing;
  mode_t mode = 0;
};

// What `rel` is inside the bundle, following symlinks only while they stay inside it.
Result<Found> LookUp(int root_fd, const std::string& rel, const std::string& dir) {
  struct open_how how {};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return Found{};
    if (errno == EXDEV) return Found{Lookup::kEscapes, 0};
    return FailErrno("look up " + rel + " in " + dir);
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno("stat " + dir + "/" + rel);
  if (S_ISREG(st.st_mode)) return Found{Lookup::kFile, st.st_mode};
  if (S_ISDIR(st.st_mode)) return Found{Lookup::kDirectory, st.st_mode};
  return Found{Lookup::kOther, st.st_mode};
}

Status NotFound(const std::string& what) { return Fail(ErrorCode::kInvalidArgument, what); }

Status CheckPythonHandler(int root_fd, const Manifest& m, const std::string& dir) {
  std::string module = rules::SplitHandler(m.runtime, m.handler).file;
  std::string path = module;
  for (char& c : path) {
    if (c == '.') c = '/';
  }
  for (const std::string& candidate : {path + ".py", path + "/__init__.py"}) {
    EMBER_ASSIGN_OR_RETURN(auto found, LookUp(root_fd, candidate, dir));
    if (found.kind == Lookup::kFile) return Ok();
  }
  return NotFound("handler module '" + module + "' not found in the bundle (looked for " + path +
                  ".py and " + path + "/__init__.py)");
}

Status CheckNativeHandler(int root_fd, const Manifest& m, const std::string& dir) {
  std::string library = rules::SplitHandler(m.runtime, m.handler).file;
  EMBER_ASSIGN_OR_RETURN(auto found, LookUp(root_fd, library, dir));
  if (found.kind == Lookup::kFile) return Ok();
  if (found.kind == Lookup::kEscapes) {
    return NotFound("handler library '" + library + "' is a symlink that leads outside the bundle");
  }
  return NotFound("handler library '" + library + "' not found in the bundle" +
                  (library.ends_with(".so") ? " (build it before deploying)" : ""));
}

// Only a command given as a relative path ("./run.sh", "bin/app") must be in the bundle; a bare
// word is looked up on the image's PATH, and anything fancier is the shell's business.
Status CheckProcessHandler(int root_fd, const Manifest& m, const std::string& dir) {
  size_t start = m.handler.find_first_not_of(" \t");
  size_t end = m.handler.find_first_of(" \t", start);
  std::string command = m.handler.substr(start, end == std::string::npos ? end : end - start);
  if (command.size() >= 2 && (command.front() == '"' || command.front() == '\'') &&
      command.back() == command.front()) {
    command = command.substr(1, command.size() - 2);
  }
  if (command.empty() || command.front() == '/' || command.find('/') == std::string::npos) {
    return Ok();
  }
  EMBER_ASSIGN_OR_RETURN(auto found, LookUp(root_fd, command, dir));
  if (found.kind == Lookup::kEscapes) {
    return NotFound("handler command '" + command + "' is a symlink that leads outside the bundle");
  }
  if (found.kind != Lookup::kFile) {
    return NotFound("handler command '" + command + "' not found in the bundle");
  }
  if ((found.mode & 0111) == 0) {
    return NotFound("handler command '" + command + "' is not executable (chmod +x " + command +
                    " before deploying)");
  }
  return Ok();
}

}  // namespace

Result<Manifest> LoadBundleManifest(const std::string& dir) { return LoadBundleManifest(dir, dir); }

Result<Manifest> LoadBundleManifest(const std::string& dir, std::string_view shown_view) {
  std::string shown(shown_view);
  auto root = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!root) {
    if (root.error().sys_errno() == ENOENT || root.error().sys_errno() == ENOTDIR) {
      return Fail(ErrorCode::kInvalidArgument, "bundle " + shown + " is not a directory");
    }
    return Fail(std::move(root).error());
  }
  int fd = ::openat(root->get(), "ember.toml", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Fail(ErrorCode::kInvalidArgument, "no ember.toml in " + shown);
    if (errno == ELOOP) {
      return Fail(ErrorCode::kInvalidArgument,
                  "ember.toml in " + shown + " is a symlink; it must be a regular file");
    }
    return FailErrno("open ember.toml in " + shown);
  }
  UniqueFd file(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno("stat ember.toml in " + shown);
  if (!S_ISREG(st.st_mode)) {
    return Fail(ErrorCode::kInvalidArgument, "ember.toml in " + shown + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestFileBytes) {
    return Fail(ErrorCode::kInvalidArgument, "ember.toml in " + shown + " is " +
                                                 std::to_string(st.st_size) +
                                                 " bytes: a manifest is at most 64KiB");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  if (n < 0) return FailErrno("read ember.toml in " + shown);
  text.resize(static_cast<size_t>(n));

  EMBER_ASSIGN_OR_RETURN(auto manifest, ParseManifest(text, "ember.toml"));
  switch (manifest.runtime) {
    case Runtime::kPython311:
      EMBER_TRY(CheckPythonHandler(root->get(), manifest, shown));
      break;
    case Runtime::kNative:
      EMBER_TRY(CheckNativeHandler(root->get(), manifest, shown));
      break;
    case Runtime::kProcess:
      EMBER_TRY(CheckProcessHandler(root->get(), manifest, shown));
      break;
  }
  return manifest;
}

}  // namespace ember::engine
