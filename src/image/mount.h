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
#pragma once

#include <sys/types.h>

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
                                         const std::string&);
  std::string image_dir_;  // <run-dir>/images/<digest>
  std::string digest_;
  std::string view_name_;  // view-<base>-<count>
  std::string lower_dir_;
  UniqueFd users_;
  UniqueFd view_users_;
  pid_t owner_ = 0;
};

Result<MountLease> AcquireMount(const ImageRecord& image, const sandbox::IdRange& ids,
                                const std::string& run_dir);

// Unmounts images (and views) that no live process uses. Missing run dir: nothing to do.
Status CleanupStaleMounts(const std::string& run_dir);

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
