#include "sandbox/mount_plan.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sys/syscalls.h"

namespace ember::sandbox {

const std::vector<std::string>& MaskedProcFiles() {
  static const std::vector<std::string> files = {
      "/proc/kcore",       "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
      "/proc/timer_stats", "/proc/sched_debug", "/proc/sysrq-trigger", "/proc/kallsyms",
      "/proc/kpagecount",  "/proc/kpageflags",  "/proc/kpagecgroup",   "/proc/config.gz"};
  return files;
}

const std::vector<std::string>& MaskedProcDirs() {
  static const std::vector<std::string> dirs = {"/proc/acpi", "/proc/scsi", "/proc/driver"};
  return dirs;
}

const std::vector<std::string>& ReadOnlyProcPaths() {
  static const std::vector<std::string> paths = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq",
                                                 "/proc/asound"};
  return paths;
}

namespace {

constexpr unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

class PlanBuilder {
 public:
  explicit PlanBuilder(MountPlan* plan) : plan_(plan) {}
  void Mount(std::string source, std::string target, std::string fstype, unsigned long flags,
             std::string data = "") {
    plan_->steps.push_back({MountOp::kMount, std::move(source), std::move(target),
                            std::move(fstype), flags, std::move(data)});
  }
  void Mkdir(std::string target, mode_t mode = 0755) {
    plan_->steps.push_back({MountOp::kMkdir, "", std::move(target), "", 0, "", mode});
  }
  void Touch(std::string target) {
    plan_->steps.push_back({MountOp::kTouch, "", std::move(target), "", 0, "", 0644});
  }
  void Symlink(std::string link_target, std::string path) {
    plan_->steps.push_back({MountOp::kSymlink, std::move(link_target), std::move(path), ""});
  }
  void BindOptional(std::string source, std::string target, unsigned long extra = 0) {
    plan_->steps.push_back(
        {MountOp::kBindOptional, std::move(source), std::move(target), "", MS_BIND | extra});
  }
  void MaskDir(std::string empty_dir, std::string target) {
    plan_->steps.push_back(
        {MountOp::kMaskDir, std::move(empty_dir), std::move(target), "", MS_BIND});
  }
  void BindNoExec(std::string source, std::string target) {
    plan_->steps.push_back(
        {MountOp::kBindNoExec, std::move(source), std::move(target), "", MS_BIND});
  }
  void BindReadOnly(std::string source, std::string target) {
    plan_->steps.push_back(
        {MountOp::kBindReadOnly, std::move(source), std::move(target), "", MS_BIND | MS_REC});
  }
  void BindRecursive(std::string source, std::string target) {
    plan_->steps.push_back(
        {MountOp::kMount, std::move(source), std::move(target), "", MS_BIND | MS_REC});
  }
  void RemountReadOnly(std::string target, unsigned long locked_flags) {
    plan_->steps.push_back({MountOp::kRemountReadOnly, "", std::move(target), "", locked_flags});
  }

 private:
  MountPlan* plan_;
};

std::string Join(const std::vector<std::string>& parts, char sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

}  // namespace

namespace {

// /proc of the sandbox's own pid namespace, with the host's sensitive files masked.
void AddProc(PlanBuilder& b, const std::string& root, const std::string& staging) {
  b.Mkdir(root + "/proc", 0555);
  b.Mount("proc", root + "/proc", "proc", kNoSuidDevExec);
  for (const auto& file : MaskedProcFiles()) b.BindOptional("/dev/null", root + file);
  for (const auto& dir : MaskedProcDirs()) b.MaskDir(staging + kMaskedDir, root + dir);
  for (const auto& path : ReadOnlyProcPaths()) {
    b.BindOptional(root + path, root + path, MS_REC);
    b.RemountReadOnly(root + path, kNoSuidDevExec);
  }
}

// The parts of /dev that are private to each sandbox: its pty instance and its shared memory,
// which is a directory of the writable layer's tmpfs (and shares its size cap).
void AddDevPtsAndShm(PlanBuilder& b, const std::string& root, const std::string& staging) {
  b.Mkdir(root + "/dev/pts");
  b.Mount("devpts", root + "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620");
  b.Mkdir(root + "/dev/shm", 01777);
  b.BindNoExec(staging + kShmDir, root + "/dev/shm");
}

// A minimal /dev: device nodes cannot be created in a user namespace, so the host's harmless
// ones are bind-mounted onto empty files. The directory is one of the writable layer's, not a
// tmpfs of its own: a superblock fewer to set up, to register a shrinker for in every memory
// cgroup, and to tear down when the sandbox exits; it is read-only once populated.
void AddDev(PlanBuilder& b, const std::string& root, const std::string& staging) {
  b.Mkdir(staging + kDevDir);
  b.Mkdir(root + "/dev");
  b.BindRecursive(staging + kDevDir, root + "/dev");
  for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty"}) {
    b.Touch(root + "/dev/" + dev);
    b.BindOptional(std::string("/dev/") + dev, root + "/dev/" + dev);
  }
  AddDevPtsAndShm(b, root, staging);
  b.Symlink("pts/ptmx", root + "/dev/ptmx");
  b.Symlink("/proc/self/fd", root + "/dev/fd");
  b.Symlink("/proc/self/fd/0", root + "/dev/stdin");
  b.Symlink("/proc/self/fd/1", root + "/dev/stdout");
  b.Symlink("/proc/self/fd/2", root + "/dev/stderr");
  b.RemountReadOnly(root + "/dev", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

// Host directories last, so that nothing above can shadow them. Missing parents of the target
// are created in the writable layer (the image itself stays untouched). `from_targets`: bind
// what is already mounted at each target (a template's view) instead of the host source.
void AddBinds(PlanBuilder& b, const std::string& root, const std::vector<BindMount>& binds,
              bool from_targets) {
  for (const auto& bind : binds) {
    for (size_t slash = bind.target.find('/', 1); slash != std::string::npos;
         slash = bind.target.find('/', slash + 1)) {
      b.Mkdir(root + bind.target.substr(0, slash));
    }
    b.Mkdir(root + bind.target);
    b.BindReadOnly(from_targets ? bind.target : bind.source, root + bind.target);
  }
}

// The private writable layer: one size-capped tmpfs holding upper and work, and the overlay.
// The same tmpfs provides /dev/shm and the empty directory that masks parts of /proc: every
// filesystem a sandbox mounts costs kernel memory in each memory cgroup on the host (a
// shrinker per superblock, docs/cgroups.md), so a sandbox mounts as few as it can.
void AddOverlayRoot(PlanBuilder& b, const std::string& staging, uint64_t size,
                    const std::string& lower_dirs) {
  b.Mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV,
          "mode=0755,size=" + std::to_string(size));
  b.Mkdir(staging + "/upper");
  b.Mkdir(staging + "/work");
  b.Mkdir(staging + kMaskedDir, 0555);
  b.Mkdir(staging + kShmDir, 01777);
  b.Mkdir(staging + "/root");
  b.Mount(
      "overlay", staging + "/root", "overlay", MS_NOSUID | MS_NODEV,
      "lowerdir=" + lower_dirs + ",upperdir=" + staging + "/upper,workdir=" + staging + "/work");
}

}  // namespace

MountPlan BuildMountPlan(const SandboxSpec& spec, const std::string& staging) {
  MountPlan plan;
  plan.staging = staging;
  plan.root = staging + "/root";
  const std::string& root = plan.root;
  PlanBuilder b(&plan);
  AddOverlayRoot(b, staging, spec.tmpfs_size, Join(spec.lower_dirs, ':'));
  if (spec.fork_template) b.Mkdir(root + kForkStagingDir, 0700);
  AddProc(b, root, staging);
  AddDev(b, root, staging);
  b.Mkdir(root + "/tmp", 01777);
  // A template's /tmp stays in its overlay, so that its children see it through their one
  // overlay of the template's root instead of a second one.
  if (!spec.fork_template) {
    b.Mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
            "mode=1777,size=" + std::to_string(spec.tmp_size));
  }
  AddBinds(b, root, spec.binds, /*from_targets=*/false);
  return plan;
}

MountPlan BuildForkMountPlan(const SandboxSpec& spec) {
  MountPlan plan;
  plan.staging = kForkStagingDir;
  plan.root = plan.staging + "/root";
  const std::string& root = plan.root;
  PlanBuilder b(&plan);
  // "/" is the template's overlay root: the image with the template's writes on top, /tmp
  // included. Its submounts (/proc, /dev, the binds, this staging dir) are not part of the
  // lower layer.
  AddOverlayRoot(b, plan.staging, spec.tmpfs_size, "/");
  AddProc(b, root, plan.staging);
  // The template's /dev is already minimal and read-only; only its pty instance and /dev/shm
  // would be shared between children, so those are replaced.
  b.Mkdir(root + "/dev");
  b.BindRecursive("/dev", root + "/dev");
  AddDevPtsAndShm(b, root, plan.staging);
  AddBinds(b, root, spec.binds, /*from_targets=*/true);
  return plan;
}

namespace {

// Read-only, nosuid and nodev through mount_setattr, which changes only these attributes: a
// MS_REMOUNT would also have to repeat the host mount's locked atime flags exactly.
int SetBindAttrs(const char* target, uint64_t attrs) noexcept {
  struct mount_attr attr {};
  attr.attr_set = attrs;
  return sys::MountSetattr(AT_FDCWD, target, AT_RECURSIVE, &attr) == 0 ? 0 : errno;
}
int MakeBindReadOnly(const char* target) noexcept {
  return SetBindAttrs(target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

// `path` as the steps name it once the process works inside the new root: relative when it lies
// below `root`, unchanged otherwise (host paths such as /dev/null, the staging directory).
const char* FromRoot(const std::string& path, const std::string& root, bool in_root) noexcept {
  if (!in_root || path.size() <= root.size() + 1 || path[root.size()] != '/' ||
      path.compare(0, root.size(), root) != 0) {
    return path.c_str();
  }
  return path.c_str() + root.size() + 1;
}

int ApplyStep(const MountStep& s, const std::string& root, bool in_root) noexcept {
  const char* target = FromRoot(s.target, root, in_root);
  // A symlink's source is its content, not a path to resolve now.
  const char* source =
      s.op == MountOp::kSymlink ? s.source.c_str() : FromRoot(s.source, root, in_root);
  switch (s.op) {
    case MountOp::kMount:
      if (::mount(source, target, s.fstype.c_str(), s.flags,
                  s.data.empty() ? nullptr : s.data.c_str()) != 0) {
        return errno;
      }
      return 0;
    case MountOp::kMaskDir:
      if (::mount(source, target, nullptr, s.flags, nullptr) != 0) {
        // Masked /proc directories are optional: the host kernel may not have them.
        return errno == ENOENT ? 0 : errno;
      }
      return SetBindAttrs(
          target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    case MountOp::kBindNoExec:
      if (::mount(source, target, nullptr, s.flags, nullptr) != 0) return errno;
      return SetBindAttrs(target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    // Exactly `mode` (sticky and world-writable dirs included): ApplyMountPlan clears the umask.
    case MountOp::kMkdir:
      if (::mkdir(target, s.mode) != 0) return errno == EEXIST ? 0 : errno;
      return 0;
    case MountOp::kTouch:
      // mknod makes a regular file in one call (no fd to open and close); never follows a link.
      if (::mknod(target, S_IFREG | s.mode, 0) != 0) return errno == EEXIST ? 0 : errno;
      return 0;
    case MountOp::kSymlink:
      if (::symlink(source, target) != 0 && errno != EEXIST) return errno;
      return 0;
    case MountOp::kBindOptional:
      if (::mount(source, target, nullptr, s.flags, nullptr) != 0) {
        return errno == ENOENT ? 0 : errno;
      }
      return 0;
    case MountOp::kBindReadOnly:
      if (::mount(source, target, nullptr, s.flags, nullptr) != 0) return errno;
      return MakeBindReadOnly(target);
    case MountOp::kRemountReadOnly:
      if (::mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | s.flags, nullptr) !=
          0) {
        return errno == ENOENT || errno == EINVAL ? 0 : errno;
      }
      return 0;
  }
  return EINVAL;
}

}  // namespace

int ApplyMountPlan(const MountPlan& plan, size_t* failed_step) noexcept {
  // With no umask, mkdir and mknod create each entry with exactly its mode, a chmod fewer per
  // directory. Restored for whatever the process runs next.
  const mode_t umask = ::umask(0);
  int err = 0;
  bool in_root = false;
  for (size_t i = 0; i < plan.steps.size() && err == 0; ++i) {
    const MountStep& step = plan.steps[i];
    err = ApplyStep(step, plan.root, in_root);
    if (err == 0 && !in_root && step.op == MountOp::kMount && step.target == plan.root) {
      // The new root is mounted: the steps below it run from inside it, each looking up
      // "proc/kcore" rather than the whole staging path (two mounts and four directories fewer
      // to walk per step, ≈60 steps).
      if (::chdir(plan.root.c_str()) != 0) {
        err = errno;
      } else {
        in_root = true;
      }
    }
    if (err != 0) *failed_step = i;
  }
  ::umask(umask);
  return err;
}

}  // namespace ember::sandbox
