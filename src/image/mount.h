// Mounting images for sandboxes, shared across processes.
//
// Each image (by digest) is mounted once, read-only, at <run-dir>/images/<digest>/raw (a
// file-backed EROFS mount; a loop device when the kernel refuses file-backed mounts). Sandboxes
// never see the raw mount: each IdRange gets an idmapped clone of it at
// <run-dir>/images/<digest>/view-<host_base>-<count>, in which a file owned by uid U in the
// image appears owned by host_base+U, so a sandbox whose ids 0..count-1 map to
// host_base..host_base+count-1 sees the image as its own root's.
//
// There is no daemon to own the mounts, so they are reference-counted with flocks in the same
// directory:
//   mutex                   held exclusively while mounting, unmounting or counting;
//   users                   held shared by every lease of the image, for as long as it lives;
//   view-<b>-<c>.users      the same for one view.
// Acquire: mutex EX -> mount what is missing -> users SH (+ view SH) -> drop mutex.
// Release: mutex EX -> drop SH locks -> whatever can now be locked EX (non-blocking) has no
// other user: unmount it and remove its directory -> drop mutex.
// A holder that dies drops its flocks with it; its mounts then stay until CleanupStaleMounts
// (run by every `ember run` and `ember image` command) finds them unused and removes them.
//
// Linger: an image unmounted the moment its last user leaves takes its page cache with it
// (the EROFS superblock owns it), so the next sandbox re-reads every file it touches: 10-20 ms
// more for a Python start. With a linger, the last user leaves the mounts in place and stamps
// the `users` file's mtime; mounts idle for longer than the linger are collected by the next
// CleanupStaleMounts, or at once by `ember image unmount`. A daemon keeps its own leases instead.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "image/store.h"
#include "sandbox/spec.h"

namespace ember::image {

// One user's hold on an image's idmapped view. Move-only; the destructor releases it.
//
// The lock fds are O_CLOEXEC, so an exec'd child holds nothing. A forked child that inherits
// them is harmless either way: the parent's hold is what keeps the mount, and only the process
// that acquired the lease releases it (a copy destroyed in a child just closes its fds).
class MountLease {
 public:
  MountLease() = default;
  MountLease(MountLease&& other) noexcept { *this = std::move(other); }
  MountLease& operator=(MountLease&& other) noexcept;
  MountLease(const MountLease&) = delete;
  MountLease& operator=(const MountLease&) = delete;
  ~MountLease();

  // The idmapped view: pass it as the overlay lowerdir.
  const std::string& lower_dir() const { return lower_dir_; }
  const std::string& digest() const { return digest_; }
  bool held() const { return users_.valid(); }

  // Releases now, reporting failures (the destructor logs them instead).
  Status Release();

 private:
  friend Result<MountLease> AcquireMount(const ImageRecord&, const sandbox::IdRange&,
                                         const std::string&, std::chrono::seconds);
  std::string image_dir_;  // <run-dir>/images/<digest>
  std::string digest_;
  std::string view_name_;  // view-<base>-<count>
  std::string lower_dir_;
  UniqueFd users_;
  UniqueFd view_users_;
  pid_t owner_ = 0;
  std::chrono::seconds linger_{0};
};

// `linger`: how long the mounts stay after the last lease is released (0: unmount at once).
Result<MountLease> AcquireMount(const ImageRecord& image, const sandbox::IdRange& ids,
                                const std::string& run_dir,
                                std::chrono::seconds linger = std::chrono::seconds(0));

// Unmounts images (and views) that no live process uses and that have been idle for at least
// `linger`; only the image `digest` when one is given. Missing run dir: nothing to do. Returns
// how many images it unmounted.
Result<size_t> CleanupStaleMounts(const std::string& run_dir,
                                  std::chrono::seconds linger = std::chrono::seconds(0),
                                  const std::string& digest = "");

// Holds an image's mount mutex so that no lease can start or end meanwhile; `users()` is how
// many leases hold its mount now. For `ember image rm`, which must not delete a blob in use.
class ImageMountGuard {
 public:
  int users() const { return users_; }

 private:
  friend Result<ImageMountGuard> LockImageMount(const std::string&, const std::string&);
  UniqueFd mutex_;
  int users_ = 0;
};
Result<ImageMountGuard> LockImageMount(const std::string& run_dir, const std::string& digest);

// A user namespace fd whose uid_map and gid_map are "0 <host_base> <count>", for
// MOUNT_ATTR_IDMAP. Made by a short-lived child that is killed and reaped before returning.
Result<UniqueFd> MakeIdmapUserns(const sandbox::IdRange& ids);

}  // namespace ember::image
