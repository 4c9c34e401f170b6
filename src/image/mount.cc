#include "image/mount.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "base/child_process.h"
#include "base/fs.h"
#include "base/log.h"
#include "image/locks.h"
#include "sys/syscalls.h"

namespace ember::image {
namespace {

constexpr unsigned long kMountFlags = MS_RDONLY | MS_NODEV | MS_NOSUID;

bool IsMountPoint(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0)
    return false;
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

// Lazily detaching would hide a leak, so it is only the fallback for a busy mount.
Status Unmount(const std::string& path) {
  if (!PathExists(path)) return Ok();
  while (IsMountPoint(path)) {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
    if (errno == EBUSY && ::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) continue;
    if (errno == EINVAL) break;
    return FailErrno("unmount " + path);
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return FailErrno("rmdir " + path);
  return Ok();
}

// The kernel refuses file-backed EROFS on older kernels (before 6.12) with ENOTBLK: attach the
// file to a free loop device instead. AUTOCLEAR frees the device with the last unmount.
Status MountViaLoop(const std::string& blob, const std::string& target, int* mount_errno) {
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return FailErrno("open /dev/loop-control");
  for (int attempt = 0; attempt < 8; ++attempt) {
    int index = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (index < 0) return FailErrno("get a free loop device");
    std::string device = "/dev/loop" + std::to_string(index);
    UniqueFd loop(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
    if (!loop) return FailErrno("open " + device);
    EMBER_ASSIGN_OR_RETURN(auto file, OpenFile(blob, O_RDONLY));
    struct loop_config config {};
    config.fd = static_cast<uint32_t>(file.get());
    config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) != 0) {
      if (errno == EBUSY) continue;  // taken between GET_FREE and CONFIGURE
      return FailErrno("attach " + blob + " to " + device);
    }
    if (::mount(device.c_str(), target.c_str(), "erofs", kMountFlags, nullptr) != 0) {
      *mount_errno = errno;
      ::ioctl(loop.get(), LOOP_CLR_FD, 0);
      return FailErrno("mount " + device);
    }
    return Ok();
  }
  return Fail(ErrorCode::kBusy, "no free loop device for " + blob);
}

Status MountErofs(const ImageRecord& image, const std::string& target) {
  int err = 0;
  if (::mount(image.blob_path.c_str(), target.c_str(), "erofs", kMountFlags, nullptr) != 0) {
    err = errno;
    if (err == ENOTBLK) {
      spdlog::info("file-backed EROFS refused, using a loop device for {}", image.blob_path);
      err = 0;
      auto looped = MountViaLoop(image.blob_path, target, &err);
      if (!looped && err == 0)
        return Fail(std::move(looped).error().Context("mount image " + image.name));
    }
  }
  if (err == 0) return Ok();
  std::string what = "mount image " + image.name + " (" + image.blob_path + ")";
  if (err == EINVAL || err == EUCLEAN || err == EBADMSG || err == EFBIG) {
    return Fail(
        Error(ErrorCode::kCorrupt, what, err).WithHint("the file is not a valid EROFS image"));
  }
  if (err == ENODEV) {
    return Fail(
        Error(ErrorCode::kUnsupported, what, err).WithHint("the kernel has no EROFS support"));
  }
  return FailErrno(what, err);
}

Status MountView(const std::string& raw, const std::string& view, const sandbox::IdRange& ids) {
  EMBER_ASSIGN_OR_RETURN(auto userns, MakeIdmapUserns(ids));
  UniqueFd tree(sys::OpenTree(AT_FDCWD, raw.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (!tree) return FailErrno("open_tree " + raw);
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
  attr.userns_fd = static_cast<uint64_t>(userns.get());
  if (sys::MountSetattr(tree.get(), "", AT_EMPTY_PATH, &attr) != 0) {
    return FailErrno("idmap " + raw + " to " + std::to_string(ids.host_base) + "+" +
                     std::to_string(ids.count));
  }
  if (sys::MoveMount(tree.get(), "", AT_FDCWD, view.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return FailErrno("move_mount idmapped view to " + view);
  }
  return Ok();
}

// Whether the lock file `path` was last stamped (released) at least `linger` ago.
bool IdleFor(const std::string& path, std::chrono::seconds linger) {
  if (linger.count() == 0) return true;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return true;
  return ::time(nullptr) - st.st_mtime >= linger.count();
}

// With the mutex held: unmounts what no lease holds any more and has been idle for `linger`.
// Removes the whole image dir (lock files included; LockPath in other processes copes) when
// nothing is left. Sets *unmounted when it removed the image's mount.
Status CollectUnused(const std::string& dir, std::chrono::seconds linger,
                     bool* unmounted = nullptr) {
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(dir));
  bool any_view_busy = false;
  for (const auto& name : names) {
    if (name.rfind("view-", 0) != 0 || name.find('.') != std::string::npos) continue;
    std::string view = dir + "/" + name;
    auto unused = LockPath(view + ".users", LOCK_EX | LOCK_NB);
    if (!unused || !IdleFor(view + ".users", linger)) {
      any_view_busy = true;
      continue;
    }
    EMBER_TRY(Unmount(view));
    ::unlink((view + ".users").c_str());
  }
  auto unused = LockPath(dir + "/users", LOCK_EX | LOCK_NB);
  if (!unused || any_view_busy || !IdleFor(dir + "/users", linger)) return Ok();
  EMBER_TRY(Unmount(dir + "/raw"));
  if (unmounted != nullptr) *unmounted = true;
  ::unlink((dir + "/users").c_str());
  ::unlink((dir + "/mutex").c_str());
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    return FailErrno("rmdir " + dir);
  return Ok();
}

// Counts the shared flocks on `path` in /proc/locks: one per lease (flocks belong to open file
// descriptions, and every lease opens its own).
int CountSharedLocks(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  std::ifstream in("/proc/locks");
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.find("->") != std::string::npos) continue;  // a waiter, not a holder
    std::istringstream fields(line);
    std::string n, kind, advisory, mode, pid, file;
    fields >> n >> kind >> advisory >> mode >> pid >> file;
    if (kind == "FLOCK" && mode == "READ" && file == id) ++count;
  }
  return count;
}

}  // namespace

Result<UniqueFd> MakeIdmapUserns(const sandbox::IdRange& ids) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return FailErrno("pipe2");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  int pidfd = -1;
  struct clone_args args {};
  args.flags = CLONE_NEWUSER | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = sys::Clone3(&args);
  if (pid < 0) return FailErrno("clone3 a user namespace for an idmapped mount");
  if (pid == 0) {
    // Only exists so its user namespace can be opened; never runs anything.
    char c;
    (void)!::read(read_end.get(), &c, 1);
    ::_exit(0);
  }
  ChildProcess child(static_cast<pid_t>(pid), UniqueFd(pidfd));
  std::string proc = "/proc/" + std::to_string(pid);
  std::string map = "0 " + std::to_string(ids.host_base) + " " + std::to_string(ids.count) + "\n";
  EMBER_TRY(WriteControlFile(proc + "/uid_map", map));
  EMBER_TRY(WriteControlFile(proc + "/setgroups", "deny"));
  EMBER_TRY(WriteControlFile(proc + "/gid_map", map));
  EMBER_ASSIGN_OR_RETURN(auto ns, OpenFile(proc + "/ns/user", O_RDONLY));
  child.KillAndReap();
  return ns;
}

MountLease& MountLease::operator=(MountLease&& other) noexcept {
  if (this != &other) {
    (void)Release();
    image_dir_ = std::move(other.image_dir_);
    digest_ = std::move(other.digest_);
    view_name_ = std::move(other.view_name_);
    lower_dir_ = std::move(other.lower_dir_);
    users_ = std::move(other.users_);
    view_users_ = std::move(other.view_users_);
    owner_ = std::exchange(other.owner_, 0);
    linger_ = other.linger_;
  }
  return *this;
}

MountLease::~MountLease() {
  if (auto released = Release(); !released) {
    spdlog::warn("release image mount: {}", released.error().ToString());
  }
}

Status MountLease::Release() {
  if (!users_.valid()) return Ok();
  if (owner_ != ::getpid()) {
    // A forked copy: the parent's hold is the real one; closing our fds leaves its locks alone.
    users_.reset();
    view_users_.reset();
    return Ok();
  }
  auto mutex = LockPath(image_dir_ + "/mutex", LOCK_EX);
  // Unlock explicitly: a forked child may still share these open file descriptions.
  ::flock(view_users_.get(), LOCK_UN);
  ::flock(users_.get(), LOCK_UN);
  if (linger_.count() > 0) {
    // Stamp the release time; the mounts stay for the next user until they idle out.
    ::futimens(view_users_.get(), nullptr);
    ::futimens(users_.get(), nullptr);
  }
  view_users_.reset();
  users_.reset();
  if (!mutex) return Fail(std::move(mutex).error().Context("release image " + digest_));
  return CollectUnused(image_dir_, linger_);
}

Result<MountLease> AcquireMount(const ImageRecord& image, const sandbox::IdRange& ids,
                                const std::string& run_dir, std::chrono::seconds linger) {
  MountLease lease;
  lease.linger_ = linger;
  lease.digest_ = image.digest;
  lease.image_dir_ = run_dir + "/images/" + image.digest;
  lease.view_name_ = "view-" + std::to_string(ids.host_base) + "-" + std::to_string(ids.count);
  lease.lower_dir_ = lease.image_dir_ + "/" + lease.view_name_;
  const std::string raw = lease.image_dir_ + "/raw";
  std::string context = "mount image " + image.name;

  UniqueFd mutex;
  for (int attempt = 0;; ++attempt) {
    // 0711: sandbox roots (unprivileged host ids) must traverse to their view, not list.
    EMBER_TRY_CTX(MakeDirs(lease.image_dir_, 0711), context);
    auto locked = LockPath(lease.image_dir_ + "/mutex", LOCK_EX);
    // The directory can vanish between MakeDirs and open when its last user cleans up.
    if (!locked && locked.error().sys_errno() == ENOENT && attempt < 10) continue;
    if (!locked) return Fail(std::move(locked).error().Context(context));
    mutex = std::move(*locked);
    break;
  }
  auto mounted = [&]() -> Status {
    if (!IsMountPoint(raw)) {
      if (::mkdir(raw.c_str(), 0700) != 0 && errno != EEXIST) return FailErrno("mkdir " + raw);
      EMBER_TRY(MountErofs(image, raw));
    }
    if (!IsMountPoint(lease.lower_dir_)) {
      if (::mkdir(lease.lower_dir_.c_str(), 0755) != 0 && errno != EEXIST) {
        return FailErrno("mkdir " + lease.lower_dir_);
      }
      EMBER_TRY_CTX(MountView(raw, lease.lower_dir_, ids), context);
    }
    EMBER_ASSIGN_OR_RETURN(lease.users_, LockPath(lease.image_dir_ + "/users", LOCK_SH));
    EMBER_ASSIGN_OR_RETURN(lease.view_users_, LockPath(lease.lower_dir_ + ".users", LOCK_SH));
    return Ok();
  }();
  if (!mounted) {
    lease.users_.reset();
    lease.view_users_.reset();
    (void)CollectUnused(lease.image_dir_, std::chrono::seconds(0));  // leave nothing half-made
    return Fail(std::move(mounted).error());
  }
  lease.owner_ = ::getpid();
  return lease;
}

Result<size_t> CleanupStaleMounts(const std::string& run_dir, std::chrono::seconds linger,
                                  const std::string& digest) {
  std::string images = run_dir + "/images";
  if (!PathExists(images)) return 0;
  // Sandbox roots (unprivileged host ids) must traverse to their views: 0711 even if an older
  // ember made the directory 0700.
  ::chmod(images.c_str(), 0711);
  std::vector<std::string> digests = {digest};
  if (digest.empty()) {
    EMBER_ASSIGN_OR_RETURN(digests, ListDirectory(images));
  }
  size_t unmounted = 0;
  for (const auto& name : digests) {
    std::string dir = images + "/" + name;
    auto mutex = LockPath(dir + "/mutex", LOCK_EX);
    if (!mutex) continue;  // removed meanwhile, or not an image dir
    bool gone = false;
    auto collected = CollectUnused(dir, linger, &gone);
    if (!collected)
      return Fail(std::move(collected).error().Context("clean up stale image mounts"));
    unmounted += gone ? 1 : 0;
  }
  return unmounted;
}

Result<ImageMountGuard> LockImageMount(const std::string& run_dir, const std::string& digest) {
  ImageMountGuard guard;
  std::string dir = run_dir + "/images/" + digest;
  if (!PathExists(dir)) return guard;  // never mounted: nothing to hold
  auto mutex = LockPath(dir + "/mutex", LOCK_EX);
  if (!mutex) {
    if (!PathExists(dir)) return guard;
    return Fail(std::move(mutex).error());
  }
  guard.mutex_ = std::move(*mutex);
  if (!LockPath(dir + "/users", LOCK_EX | LOCK_NB)) {
    guard.users_ = std::max(1, CountSharedLocks(dir + "/users"));
  }
  return guard;
}

}  // namespace ember::image
