#include "sandbox/fork_rootfs.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "sys/syscalls.h"

namespace ember::sandbox {

ForkRootfsPlan BuildForkRootfsPlan(const SandboxSpec& spec) {
  ForkRootfsPlan plan;
  plan.layer_options = "mode=0755,size=" + std::to_string(spec.tmpfs_size);
  plan.layer_dirs = {{"upper", 0755},
                     {"work", 0755},
                     {kMaskedDir + 1, 0555},
                     {kShmDir + 1, 01777},
                     {"root", 0755}};
  // "/" is the template's overlay root: the image with the template's writes on top, /tmp
  // included. Its submounts (/proc, /dev, the binds) are not part of the lower layer.
  plan.lower = "/";
  plan.devpts_options = "newinstance,ptmxmode=0666,mode=0620";
  plan.dev_dirs = {{"dev/pts", 0755}, {"dev/shm", 01777}};
  plan.root_dirs = {{"dev", 0755}};
  for (const auto& bind : spec.binds) {
    std::string_view target = bind.target;
    while (!target.empty() && target.front() == '/') target.remove_prefix(1);
    for (size_t slash = target.find('/'); slash != std::string_view::npos;
         slash = target.find('/', slash + 1)) {
      plan.root_dirs.push_back({std::string(target.substr(0, slash)), 0755});
    }
    plan.root_dirs.push_back({std::string(target), 0755});
    plan.bind_targets.push_back(bind.target);
  }
  return plan;
}

MountPlan BuildForkChildMounts(bool (*exists)(const char* path)) {
  MountPlan plan;
  plan.staging = kForkStagingDir;
  plan.root = plan.staging + "/root";
  const std::string& root = plan.root;
  constexpr unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  auto add = [&plan](MountOp op, std::string source, std::string target, std::string fstype,
                     unsigned long flags) {
    plan.steps.push_back({op, std::move(source), std::move(target), std::move(fstype), flags});
  };
  // As plain boot's AddProc (mount_plan.cc), on the overlay's /proc, which the template's root
  // always has (its own /proc is mounted there).
  add(MountOp::kMount, "proc", root + "/proc", "proc", kNoSuidDevExec);
  for (const auto& file : MaskedProcFiles()) {
    if (exists(file.c_str())) add(MountOp::kBindOptional, "/dev/null", root + file, "", MS_BIND);
  }
  for (const auto& dir : MaskedProcDirs()) {
    if (exists(dir.c_str()))
      add(MountOp::kMaskDir, plan.staging + kMaskedDir, root + dir, "", MS_BIND);
  }
  for (const auto& path : ReadOnlyProcPaths()) {
    if (!exists(path.c_str())) continue;
    add(MountOp::kBindOptional, root + path, root + path, "", MS_BIND | MS_REC);
    add(MountOp::kRemountReadOnly, "", root + path, "", kNoSuidDevExec);
  }
  return plan;
}

namespace {

int FsOpen(const char* fstype) {
  return static_cast<int>(::syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC));
}
int FsConfig(int fs, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fs, cmd, key, value, aux));
}
int FsMount(int fs, unsigned attrs) {
  return static_cast<int>(::syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs));
}

// The filesystem's own words on why a configuration failed (the context's message log), if any.
std::string ContextLog(int fs) {
  char buf[512];
  ssize_t n = ::read(fs, buf, sizeof buf - 1);
  if (n <= 2) return "";
  return " (" + std::string(buf + 2, static_cast<size_t>(n - 2)) + ")";  // skips "e "
}

// A new `fstype` superblock, detached: `options` as mount(2) data ("key=value,flag").
class NewFs {
 public:
  static Result<NewFs> Open(const char* fstype) {
    int fs = FsOpen(fstype);
    if (fs < 0) return FailErrno(std::string("fsopen ") + fstype);
    return NewFs(fstype, UniqueFd(fs));
  }
  Status Options(std::string_view options) {
    while (!options.empty()) {
      size_t comma = options.find(',');
      std::string option(options.substr(0, comma));
      options.remove_prefix(comma == std::string_view::npos ? options.size() : comma + 1);
      size_t eq = option.find('=');
      std::string key = option.substr(0, eq);
      int rc =
          eq == std::string::npos
              ? FsConfig(fs_.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
              : FsConfig(fs_.get(), FSCONFIG_SET_STRING, key.c_str(), option.c_str() + eq + 1, 0);
      if (rc != 0) return Failed("set " + option);
    }
    return Ok();
  }
  Status Fd(const char* key, int fd) {
    if (FsConfig(fs_.get(), FSCONFIG_SET_FD, key, nullptr, fd) != 0) {
      return Failed(std::string("set ") + key);
    }
    return Ok();
  }
  Result<UniqueFd> Mount(unsigned attrs) {
    if (FsConfig(fs_.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return Failed("create");
    int mnt = FsMount(fs_.get(), attrs);
    if (mnt < 0) return FailErrno(fstype_ + ": fsmount");
    return UniqueFd(mnt);
  }

 private:
  NewFs(std::string fstype, UniqueFd fs) : fstype_(std::move(fstype)), fs_(std::move(fs)) {}
  tl::unexpected<Error> Failed(const std::string& what) {
    int err = errno;
    return FailErrno(fstype_ + ": " + what + ContextLog(fs_.get()), err);
  }
  std::string fstype_;
  UniqueFd fs_;
};

// Exactly `mode` (sticky and world-writable dirs included), whatever the umask; EEXIST is fine.
Status MakeDir(int at, const ForkRootfsPlan::Dir& dir, std::string_view where) {
  if (::mkdirat(at, dir.path.c_str(), dir.mode) != 0) {
    if (errno == EEXIST) return Ok();
    return FailErrno("mkdir " + std::string(where) + "/" + dir.path);
  }
  if (::fchmodat(at, dir.path.c_str(), dir.mode, 0) != 0) {
    return FailErrno("chmod " + std::string(where) + "/" + dir.path);
  }
  return Ok();
}

Status SetAttrs(int mnt, uint64_t attrs, const std::string& what) {
  struct mount_attr attr {};
  attr.attr_set = attrs;
  if (sys::MountSetattr(mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr) != 0) {
    return FailErrno("mount_setattr " + what);
  }
  return Ok();
}

// A detached recursive clone of what is mounted at `path` (relative to `at`).
Result<UniqueFd> CloneTree(int at, const std::string& path, const std::string& what) {
  int tree = sys::OpenTree(at, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) return FailErrno("open_tree " + what);
  return UniqueFd(tree);
}

Status Attach(const UniqueFd& tree, int root, std::string_view target, const std::string& what) {
  while (!target.empty() && target.front() == '/') target.remove_prefix(1);
  std::string path(target);
  if (sys::MoveMount(tree.get(), "", root, path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return FailErrno("attach " + what + " on root/" + path);
  }
  return Ok();
}

Result<UniqueFd> MakeLayer(const ForkRootfsPlan& plan) {
  EMBER_ASSIGN_OR_RETURN(NewFs tmpfs, NewFs::Open("tmpfs"));
  EMBER_TRY(tmpfs.Options(plan.layer_options));
  EMBER_ASSIGN_OR_RETURN(UniqueFd layer, tmpfs.Mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  for (const auto& dir : plan.layer_dirs) EMBER_TRY(MakeDir(layer.get(), dir, "layer"));
  return layer;
}

Result<UniqueFd> MakeOverlay(const ForkRootfsPlan& plan, int layer) {
  UniqueFd upper(::openat(layer, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd work(::openat(layer, "work", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!upper || !work) return FailErrno("open the layer's upper and work dirs");
  EMBER_ASSIGN_OR_RETURN(NewFs overlay, NewFs::Open("overlay"));
  EMBER_TRY(overlay.Options("lowerdir=" + plan.lower));
  EMBER_TRY(overlay.Fd("upperdir", upper.get()));
  EMBER_TRY(overlay.Fd("workdir", work.get()));
  return overlay.Mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

}  // namespace

Result<PreparedRootfs> PrepareForkRootfs(const ForkRootfsPlan& plan) {
  PreparedRootfs out;
  EMBER_ASSIGN_OR_RETURN(out.layer, MakeLayer(plan));
  EMBER_ASSIGN_OR_RETURN(out.root, MakeOverlay(plan, out.layer.get()));
  const int root = out.root.get();
  for (const auto& dir : plan.root_dirs) EMBER_TRY(MakeDir(root, dir, "root"));
  // The template's /dev is already minimal and read-only; only its pty instance and /dev/shm
  // would be shared between children, so those are covered by the child's own.
  EMBER_ASSIGN_OR_RETURN(UniqueFd dev, CloneTree(AT_FDCWD, "/dev", "/dev"));
  EMBER_TRY(Attach(dev, root, "dev", "/dev"));
  for (const auto& dir : plan.dev_dirs) EMBER_TRY(MakeDir(root, dir, "root"));
  EMBER_ASSIGN_OR_RETURN(NewFs devpts, NewFs::Open("devpts"));
  EMBER_TRY(devpts.Options(plan.devpts_options));
  EMBER_ASSIGN_OR_RETURN(UniqueFd pts, devpts.Mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  EMBER_TRY(Attach(pts, root, "dev/pts", "devpts"));
  // /dev/shm is a directory of the writable layer, so it shares the layer's size cap.
  EMBER_ASSIGN_OR_RETURN(UniqueFd shm, CloneTree(out.layer.get(), kShmDir + 1, "layer/shm"));
  EMBER_TRY(SetAttrs(shm.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, "shm"));
  EMBER_TRY(Attach(shm, root, "dev/shm", "layer/shm"));
  // Host directories last, so that nothing above can shadow them.
  for (const auto& target : plan.bind_targets) {
    EMBER_ASSIGN_OR_RETURN(UniqueFd bind, CloneTree(AT_FDCWD, target, target));
    EMBER_TRY(
        SetAttrs(bind.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, target));
    EMBER_TRY(Attach(bind, root, target, target));
  }
  return out;
}

int AttachForkRootfs(int layer, int root, const MountPlan& mounts, uint32_t* failed) noexcept {
  if (sys::MoveMount(layer, "", AT_FDCWD, mounts.staging.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    *failed = kAttachLayerStep;
    return errno;
  }
  if (sys::MoveMount(root, "", AT_FDCWD, mounts.root.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    *failed = kAttachRootStep;
    return errno;
  }
  return 0;
}

}  // namespace ember::sandbox
