#include "sys/kernel_checks.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>

#include "base/child_process.h"
#include "base/fs.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sys/probe_child.h"
#include "sys/syscalls.h"

namespace ember::sys::kernel_checks {
namespace {

bool WriteSmallFile(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = ::write(fd, text, std::strlen(text));
  int saved = errno;
  ::close(fd);
  errno = saved;
  return n == static_cast<ssize_t>(std::strlen(text));
}

// Maps the calling process's own uid/gid 0 into its fresh user namespace (allowed for one's own
// ids without privileges in the parent namespace).
bool MapSelfAsRoot(ChildReport& r) {
  return Step(r, WriteSmallFile("/proc/self/setgroups", "deny"), "write setgroups") &&
         Step(r, WriteSmallFile("/proc/self/uid_map", "0 0 1"), "write uid_map") &&
         Step(r, WriteSmallFile("/proc/self/gid_map", "0 0 1"), "write gid_map");
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text->c_str(), &end, 10);
  if (end == text->c_str()) return std::nullopt;
  return v;
}

// Opens a user namespace mapping 0..65535 to 100000.. (held by a short-lived grandchild).
int OpenMappedUserns(ChildReport& r) {
  int ready[2], hold[2];
  if (!Step(r, ::pipe(ready) == 0 && ::pipe(hold) == 0, "pipe")) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(hold[1]);  // else the read below never sees EOF
    char c = ::unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(hold[0], &c, 1);
    ::_exit(0);
  }
  char c = 'n';
  int fd = -1;
  if (pid > 0 && ::read(ready[0], &c, 1) == 1 && c == 'y') {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    bool mapped = Step(r, WriteSmallFile(path, "0 100000 65536"), "write uid_map of helper");
    std::snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    mapped = mapped && Step(r, WriteSmallFile(path, "0 100000 65536"), "write gid_map of helper");
    std::snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
    if (mapped) {
      fd = ::open(path, O_RDONLY | O_CLOEXEC);
      Step(r, fd >= 0, "open helper's user namespace");
    }
  } else {
    Step(r, false, "helper: unshare(CLONE_NEWUSER)");
  }
  ::close(hold[1]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  for (int f : {ready[0], ready[1], hold[0]}) ::close(f);
  return fd;
}

}  // namespace

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Scratch::~Scratch() {
  if (!dir.empty()) (void)RemoveTree(dir);
}

void PrepareScratch(Scratch& s, const std::string& parent) {
  std::string templ = parent + "/ember-probe-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    s.image_error = "mkdtemp in " + parent + ": " + std::string(strerrorname_np(errno));
    return;
  }
  s.dir = templ;
  for (const char* sub : {"/src", "/mnt", "/ovl"}) ::mkdir((s.dir + sub).c_str(), 0755);
  if (!WriteFileAtomic(s.dir + "/src/hello", "ember\n")) return;
  auto made = RunTool({"mkfs.erofs", "--quiet", s.dir + "/image.erofs", s.dir + "/src"});
  if (made) {
    s.image = s.dir + "/image.erofs";
  } else {
    s.image_error = made.error().ToString();
  }
}

FeatureResult ProbeUserNamespaces() {
  auto r = RunInChild(
      [](ChildReport& r) { Step(r, ::unshare(CLONE_NEWUSER) == 0, "unshare(CLONE_NEWUSER)"); });
  return MakeFeature(feature::kUserNamespaces, true, r, "created a user namespace", "");
}

FeatureResult ProbeOverlay(const Scratch& s) {
  // Every path is built here: the child must not allocate (the parent may have threads).
  const std::string base = s.dir + "/ovl";
  const std::string dirs[4] = {base + "/l", base + "/u", base + "/w", base + "/m"};
  const std::string opts = "lowerdir=" + dirs[0] + ",upperdir=" + dirs[1] + ",workdir=" + dirs[2];
  auto r = RunInChild([&](ChildReport& r) {
    if (!Step(r, ::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0, "unshare(user|mnt)") ||
        !MapSelfAsRoot(r) ||
        !Step(r, ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
              "make / private") ||
        !Step(r, ::mount("tmpfs", base.c_str(), "tmpfs", 0, "size=1m") == 0, "mount tmpfs")) {
      return;
    }
    for (const std::string& d : dirs) ::mkdir(d.c_str(), 0755);
    Step(r, ::mount("overlay", dirs[3].c_str(), "overlay", 0, opts.c_str()) == 0,
         "mount overlay in a user namespace");
  });
  return MakeFeature(feature::kOverlayInUserns, true, r,
                     "mounted overlay (tmpfs upper) in a user namespace", "");
}

FeatureResult ProbeErofs(const Scratch& s) {
  bool loop = PathExists("/dev/loop-control");
  std::string fallback = loop ? "mount images through a loop device (slower: ~150 µs per mount)"
                              : "no loop devices either: images are mounted as plain directories";
  if (s.image.empty()) {
    return {std::string(feature::kErofsFileBacked), false, false,
            "could not build a test image: " + s.image_error + " (package erofs-utils)", fallback};
  }
  std::string image = s.image, mnt = s.dir + "/mnt";
  auto r = RunInChild([&](ChildReport& r) {
    if (!Step(r, ::unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)") ||
        !Step(r, ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
              "make / private")) {
      return;
    }
    Step(r, ::mount(image.c_str(), mnt.c_str(), "erofs", MS_RDONLY, nullptr) == 0,
         "mount EROFS from a regular file");
  });
  return MakeFeature(feature::kErofsFileBacked, false, r,
                     "mounted an EROFS image file without a loop device", fallback);
}

FeatureResult ProbeIdmap(const Scratch& s, bool erofs_ok) {
  const std::string image = erofs_ok ? s.image : "", mnt = s.dir + "/mnt";
  const std::string file = mnt + "/hello";
  auto r = RunInChild([&](ChildReport& r) {
    if (!Step(r, ::unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)") ||
        !Step(r, ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
              "make / private")) {
      return;
    }
    // On EROFS when it mounts (what ember idmaps); otherwise a tmpfs says whether idmap exists.
    if (image.empty()) {
      if (!Step(r, ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") == 0, "mount tmpfs")) {
        return;
      }
      int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (!Step(r, fd >= 0, "create test file")) return;
      ::close(fd);
    } else if (!Step(r, ::mount(image.c_str(), mnt.c_str(), "erofs", MS_RDONLY, nullptr) == 0,
                     "mount EROFS")) {
      return;
    }
    int userns = OpenMappedUserns(r);
    if (userns < 0) return;
    int tree = sys::OpenTree(AT_FDCWD, mnt.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (!Step(r, tree >= 0, "open_tree(OPEN_TREE_CLONE)")) return;
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns);
    if (!Step(r, sys::MountSetattr(tree, "", AT_EMPTY_PATH, &attr) == 0,
              image.empty() ? "mount_setattr(MOUNT_ATTR_IDMAP) on tmpfs"
                            : "mount_setattr(MOUNT_ATTR_IDMAP) on EROFS")) {
      return;
    }
    struct stat st {};
    if (!Step(r, ::fstatat(tree, "hello", &st, 0) == 0, "stat through the idmapped mount")) return;
    if (st.st_uid != 100000) {
      r.err = EINVAL;
      std::snprintf(r.detail, sizeof r.detail, "idmapped file shows uid %u, expected 100000",
                    st.st_uid);
    }
  });
  return MakeFeature(feature::kIdmappedMounts, false, r,
                     erofs_ok ? "idmapped an EROFS mount (uid 0 shown as 100000)"
                              : "idmapped a tmpfs mount (EROFS itself did not mount)",
                     "image files appear owned by nobody (65534) inside sandboxes");
}

FeatureResult ProbeCgroups(KernelFeatures& out) {
  FeatureResult f{std::string(feature::kCgroups), false, true, "", ""};
  auto mounts = cgroup::ParseCgroupMounts(ReadFile("/proc/self/mountinfo").value_or(""));
  bool v1 = false, v2 = false;
  for (const auto& m : mounts) (m.version == cgroup::Version::kV1 ? v1 : v2) = true;
  out.cgroup_layout = v1 && v2 ? "hybrid" : v1 ? "v1" : v2 ? "v2" : "none";
  auto hierarchy = cgroup::DetectHierarchy();
  if (!hierarchy) {
    f.detail = out.cgroup_layout + ": " + hierarchy.error().ToString();
    return f;
  }
  out.cgroup_version = static_cast<int>(hierarchy->version);
  std::string where;
  for (cgroup::Controller c : cgroup::kControllers) {
    std::string name(cgroup::ControllerName(c));
    std::string root = hierarchy->RootFor(c);
    out.cgroup_controllers[name] = (out.cgroup_version == 1 ? "v1 " : "v2 ") + root;
    where += (where.empty() ? "" : ", ") + name + (out.cgroup_version == 1 ? " (v1)" : " (v2)");
  }
  f.ok = true;
  f.detail = out.cgroup_layout + " layout, ember uses v" + std::to_string(out.cgroup_version) +
             ": " + where;
  if (out.cgroup_layout == "hybrid" && !hierarchy->v2_root.empty()) {
    std::string held;
    for (const auto& c : hierarchy->v2_controllers) held += (held.empty() ? "" : ",") + c;
    f.detail +=
        "; cgroup2 at " + hierarchy->v2_root + " holds " + (held.empty() ? "nothing" : held);
  }
  return f;
}

FeatureResult ProbeCloneIntoCgroup(const KernelFeatures& k) {
  const std::string fallback = "attach by writing cgroup.procs before the child runs";
  auto hierarchy = cgroup::DetectHierarchy();
  std::string v2_root = hierarchy ? hierarchy->v2_root : "";
  if (v2_root.empty()) {
    return {std::string(feature::kCloneIntoCgroup), false, false, "no cgroup2 mount", fallback};
  }
  // The kernel feature is tried against our own v2 cgroup even on a hybrid host, but it is only
  // usable when ember's controllers live in v2.
  std::string own = "/";
  std::istringstream lines(ReadFile("/proc/self/cgroup").value_or(""));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) own = line.substr(3);
  }
  auto dir = OpenFile(v2_root + own, O_RDONLY | O_DIRECTORY);
  ChildReport r;
  if (!dir) {
    r.err = dir.error().sys_errno();
    std::snprintf(r.detail, sizeof r.detail, "%s", dir.error().ToString().c_str());
  } else {
    struct clone_args args {};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(dir->get());
    long pid = sys::Clone3(&args);
    if (pid == 0) ::_exit(0);
    if (pid < 0) {
      Step(r, false, "clone3(CLONE_INTO_CGROUP)");
    } else {
      ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
      r.err = 0;
    }
  }
  FeatureResult f = MakeFeature(feature::kCloneIntoCgroup, false, r,
                                "clone3 with CLONE_INTO_CGROUP works", fallback);
  if (f.ok && k.cgroup_version != 2) {
    f.ok = false;
    f.detail = "the kernel supports it, but ember uses cgroup v1 here (it only applies to v2)";
    f.fallback = fallback;
  }
  return f;
}

FeatureResult ProbeTimeNamespaces() {
  auto r = RunInChild(
      [](ChildReport& r) { Step(r, ::unshare(CLONE_NEWTIME) == 0, "unshare(CLONE_NEWTIME)"); });
  return MakeFeature(feature::kTimeNamespaces, false, r, "unshare(CLONE_NEWTIME) works",
                     "restored instances share the host's monotonic and boot clocks");
}

FeatureResult ProbePidfd() {
  ChildReport r;
  int fd = sys::PidfdOpen(::getpid());
  if (Step(r, fd >= 0, "pidfd_open")) r.err = 0;
  if (fd >= 0) ::close(fd);
  return MakeFeature(feature::kPidfd, true, r, "pidfd_open works", "");
}

FeatureResult ProbeSeccomp() {
  std::string avail = Trim(ReadFile("/proc/sys/kernel/seccomp/actions_avail").value_or("?"));
  auto r = RunInChild([](ChildReport& r) {
    sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    sock_fprog prog{1, &allow};
    if (Step(r, ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "prctl(PR_SET_NO_NEW_PRIVS)")) {
      Step(r, ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0,
           "seccomp(SECCOMP_SET_MODE_FILTER)");
    }
  });
  return MakeFeature(feature::kSeccomp, true, r, "installed a filter; actions: " + avail, "");
}

FeatureResult ProbeRseq() {
  // With a null area and length 0 a kernel that has rseq answers EINVAL; one without, ENOSYS.
  ChildReport r;
  errno = 0;
  long rc = ::syscall(SYS_rseq, nullptr, 0, 0, 0);
  r.err = rc != 0 && errno == ENOSYS ? ENOSYS : 0;
  std::snprintf(r.detail, sizeof r.detail, "rseq: ENOSYS");
  return MakeFeature(feature::kRseq, false, r, "rseq syscall present",
                     "snapshots restore without rseq registration (glibc runs without it)");
}

FeatureResult ProbePrSetMmMap() {
  auto r = RunInChild([](ChildReport& r) {
    char stat[1024] = {};
    int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (!Step(r, fd >= 0 && ::read(fd, stat, sizeof stat - 1) > 0, "read /proc/self/stat")) return;
    ::close(fd);
    unsigned long long f[53] = {};  // f[i] = field i (1-based), from field 3 on
    const char* p = std::strrchr(stat, ')');
    for (int i = 3; p != nullptr && i <= 52; ++i) {
      p = std::strchr(p, ' ');
      if (p == nullptr) break;
      ++p;
      f[i] = std::strtoull(p, nullptr, 10);
    }
    static uint64_t auxv[128];
    fd = ::open("/proc/self/auxv", O_RDONLY | O_CLOEXEC);
    ssize_t auxv_len = fd >= 0 ? ::read(fd, auxv, sizeof auxv) : -1;
    if (fd >= 0) ::close(fd);
    if (!Step(r, auxv_len > 0, "read /proc/self/auxv")) return;
    prctl_mm_map map{};
    map.start_code = f[26], map.end_code = f[27], map.start_stack = f[28];
    map.start_data = f[45], map.end_data = f[46], map.start_brk = f[47];
    map.brk = static_cast<uint64_t>(::syscall(SYS_brk, 0));
    map.arg_start = f[48], map.arg_end = f[49], map.env_start = f[50], map.env_end = f[51];
    map.auxv = reinterpret_cast<__u64*>(auxv);
    map.auxv_size = static_cast<uint32_t>(auxv_len);
    map.exe_fd = static_cast<uint32_t>(-1);
    unsigned int size = 0;
    if (!Step(r, ::prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) == 0, "PR_SET_MM_MAP_SIZE"))
      return;
    if (size != sizeof map) {
      r.err = EINVAL;
      std::snprintf(r.detail, sizeof r.detail, "kernel's prctl_mm_map is %u bytes, ember's %zu",
                    size, sizeof map);
      return;
    }
    Step(r, ::prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map, 0) == 0,
         "prctl(PR_SET_MM, PR_SET_MM_MAP) with the current layout");
  });
  return MakeFeature(feature::kPrSetMmMap, false, r, "PR_SET_MM_MAP with exe_fd=-1 works",
                     "snapshot restore unavailable: cold and warm boot fall back to plain boot");
}

void ProbeValues(KernelFeatures& k) {
  auto number = [&k](std::string_view name, const std::string& path, uint64_t min_ok,
                     std::string ok_text, std::string fallback) {
    auto v = ReadNumber(path);
    if (v) k.values[std::string(name)] = *v;
    bool ok = v && *v >= min_ok;
    std::string detail = v ? std::to_string(*v) + " " + ok_text : "cannot read " + path;
    k.features.push_back({std::string(name), ok, false, detail, ok ? "" : fallback});
  };
  number(feature::kPidMax, "/proc/sys/kernel/pid_max", 32768,
         "(each sandbox has its own pid namespace)",
         "fewer concurrent processes; raise with sysctl kernel.pid_max");
  struct rlimit rl {};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  k.values["nofile_soft"] = rl.rlim_cur;
  k.values["nofile_hard"] = rl.rlim_max;
  bool nofile_ok = rl.rlim_max >= 4096;
  k.features.push_back(
      {std::string(feature::kNofile), nofile_ok, false,
       "soft " + std::to_string(rl.rlim_cur) + ", hard " + std::to_string(rl.rlim_max),
       nofile_ok ? "" : "fewer open sandboxes per ember process"});
  number(feature::kMaxUserNamespaces, "/proc/sys/user/max_user_namespaces", 1024,
         "(one per sandbox)", "at most that many sandboxes at once");
  if (auto last = ReadNumber("/proc/sys/kernel/cap_last_cap")) k.values["cap_last_cap"] = *last;
}

}  // namespace ember::sys::kernel_checks
