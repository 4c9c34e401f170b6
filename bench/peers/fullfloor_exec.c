/* The floor of everything issue 2 mandates for `ember run`'s sandbox (bench/peers/tools.py,
 * FullFloor): the kernel work of ember's own sandbox setup (src/sandbox/sandbox.cc, child.cc,
 * mount_plan.cc, capabilities.cc, seccomp.cc), in the same order, in one small program with no
 * abstraction, so that ember − this floor is ember's own overhead and this floor − the
 * unshare+chroot baseline is the mandated kernel work.
 *
 * Started as host root (not under unshare(1)): it makes the namespaces itself.
 *
 * Parent:
 *   clone3 with CLONE_NEWUSER|NEWNS|NEWPID|NEWIPC|NEWUTS, a sync pipe; writes the child's
 *   uid_map and gid_map ("0 100000 65536", ember's default id range; as host root no
 *   setgroups "deny" is needed), its pid into each pre-created cgroup's cgroup.procs, then
 *   releases it with one byte and waits for it; exits with its status (128+N on signal N).
 * Child:
 *   unshare(CLONE_NEWNET) while the parent works, then waits for the byte;
 *   setresgid/setresuid(0), setgroups(0); unshare(CLONE_NEWCGROUP); / MS_REC|MS_PRIVATE;
 *   ember's mount plan: a 64 MiB tmpfs staging layer (upper, work, masked, shm, root), the
 *   overlay with the image as lower, /proc with ember's masks (only the paths this kernel has,
 *   decided once by the benchmark's setup), the minimal /dev (host nodes bind-mounted on files
 *   of the layer's dev dir, devpts newinstance, /dev/shm, the symlinks, read-only), a 64 MiB
 *   /tmp tmpfs; pivot_root(".", ".") + detach; sethostname; loopback up; ember's rlimits;
 *   ember's capability drop (ambient clear, securebits, bounding set, setresgid/uid, capset 0);
 *   no_new_privs and ember's own compiled seccomp filter (read once at start from the file
 *   ember caches it in); execve with the caller's environment.
 *
 *   fullfloor-exec BPF LOWER STAGING CAP_LAST_CAP PROC_FILES PROC_DIRS PROC_RO \
 *                  CGROUP_PROCS... -- CMD [ARGS...]
 *
 * PROC_*: comma-separated names under /proc ("-" for none). The parent (host root) chdirs
 * into LOWER before the clone and the child names it to the overlay as ".": the benchmark's
 * scratch dirs are 0700 and the child's credentials (host uid 100000) cannot walk them, and an
 * fd opened before the clone would name the host namespace's mount, which overlay refuses
 * ("failed to clone lowerpath"); the clone moves the cwd into the new mount namespace.
 *
 * Built by the benchmark (cc -O2, dynamically linked) into its scratch dir; not part of ember.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

struct clone_args_v0 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#define SIZE_64M "67108864" /* SandboxSpec::tmpfs_size and ::tmp_size */
#define HOSTNAME "sb-fullfloor00"
#define ID_MAP "0 100000 65536"

static void die(const char *what, const char *path) {
  fprintf(stderr, "fullfloor-exec: %s %s: %s\n", what, path, strerror(errno));
  _exit(125);
}

static void write_file(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  size_t n = strlen(value);
  if (write(fd, value, n) != (ssize_t)n) die("write", path);
  close(fd);
}

/* ---- the child's mount plan (mount_plan.cc), paths relative to the new root once it is up */

static char staging_buf[2048];

static const char *at_staging(const char *sub) {
  static char buf[4][4096];
  static int k;
  char *out = buf[k++ & 3];
  snprintf(out, sizeof buf[0], "%s%s", staging_buf, sub);
  return out;
}

static void do_mount(const char *src, const char *dst, const char *fs, unsigned long fl,
                     const char *data) {
  if (mount(src, dst, fs, fl, data) != 0) die("mount", dst);
}
static void do_mkdir(const char *path, mode_t mode) {
  if (mkdir(path, mode) != 0 && errno != EEXIST) die("mkdir", path);
}
static void set_attrs(const char *path, uint64_t attrs) {
  struct mount_attr attr = {.attr_set = attrs};
  if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) != 0)
    die("mount_setattr", path);
}

/* Calls fn(name, arg) for each name of a comma-separated list ("-": none). */
static void each(char *list, void (*fn)(const char *, void *), void *arg) {
  if (strcmp(list, "-") == 0) return;
  for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
    fn(s, arg);
}
static void mask_file(const char *name, void *unused) {
  (void)unused;
  char path[256];
  snprintf(path, sizeof path, "proc/%s", name);
  do_mount("/dev/null", path, NULL, MS_BIND, NULL);
}
static void mask_dir(const char *name, void *unused) {
  (void)unused;
  char path[256];
  snprintf(path, sizeof path, "proc/%s", name);
  do_mount(at_staging("/masked"), path, NULL, MS_BIND, NULL);
  set_attrs(path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
}
static void read_only(const char *name, void *unused) {
  (void)unused;
  char path[256];
  snprintf(path, sizeof path, "proc/%s", name);
  do_mount(path, path, NULL, MS_BIND | MS_REC, NULL);
  do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
           NULL);
}

static void mount_plan(const char *lowerdir, char *proc_files, char *proc_dirs, char *proc_ro) {
  const mode_t old_umask = umask(0);
  /* The writable layer: one size-capped tmpfs with upper, work, the masking dir, shm, root. */
  do_mount("tmpfs", staging_buf, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=" SIZE_64M);
  do_mkdir(at_staging("/upper"), 0755);
  do_mkdir(at_staging("/work"), 0755);
  do_mkdir(at_staging("/masked"), 0555);
  do_mkdir(at_staging("/shm"), 01777);
  do_mkdir(at_staging("/root"), 0755);
  char opts[8192];
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lowerdir,
           at_staging("/upper"), at_staging("/work"));
  do_mount("overlay", at_staging("/root"), "overlay", MS_NOSUID | MS_NODEV, opts);
  if (chdir(at_staging("/root")) != 0) die("chdir", at_staging("/root"));
  /* /proc of the new pid namespace, masked. */
  do_mkdir("proc", 0555);
  do_mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  each(proc_files, mask_file, NULL);
  each(proc_dirs, mask_dir, NULL);
  each(proc_ro, read_only, NULL);
  /* The minimal /dev: a directory of the layer, host nodes bound onto empty files. */
  do_mkdir(at_staging("/dev"), 0755);
  do_mkdir("dev", 0755);
  do_mount(at_staging("/dev"), "dev", NULL, MS_BIND | MS_REC, NULL);
  static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (size_t i = 0; i < sizeof devs / sizeof *devs; ++i) {
    char path[64], host[64];
    snprintf(path, sizeof path, "dev/%s", devs[i]);
    snprintf(host, sizeof host, "/dev/%s", devs[i]);
    if (mknod(path, S_IFREG | 0644, 0) != 0 && errno != EEXIST) die("mknod", path);
    do_mount(host, path, NULL, MS_BIND, NULL);
  }
  do_mkdir("dev/pts", 0755);
  do_mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620");
  do_mkdir("dev/shm", 01777);
  do_mount(at_staging("/shm"), "dev/shm", NULL, MS_BIND, NULL);
  set_attrs("dev/shm", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  static const char *const links[][2] = {{"pts/ptmx", "dev/ptmx"},
                                         {"/proc/self/fd", "dev/fd"},
                                         {"/proc/self/fd/0", "dev/stdin"},
                                         {"/proc/self/fd/1", "dev/stdout"},
                                         {"/proc/self/fd/2", "dev/stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; ++i) {
    if (symlink(links[i][0], links[i][1]) != 0 && errno != EEXIST) die("symlink", links[i][1]);
  }
  do_mount(NULL, "dev", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
           NULL);
  /* /tmp: a tmpfs of its own. */
  do_mkdir("tmp", 01777);
  do_mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=" SIZE_64M);
  umask(old_umask);
}

/* ---- the rest of the child (child.cc, capabilities.cc, seccomp.cc) */

static void drop_capabilities(int cap_last_cap) {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) die("prctl", "ambient");
  const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                             SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                             SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) die("prctl", "securebits");
  for (int cap = 0; cap <= cap_last_cap; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) die("capbset drop", "");
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
  if (syscall(SYS_capset, &header, data) != 0) die("capset", "0");
}

static void child(int sync_fd, const char *lowerdir, int cap_last_cap, char *proc_files,
                  char *proc_dirs, char *proc_ro, const struct sock_fprog *filter,
                  char **cmd) {
  if (unshare(CLONE_NEWNET) != 0) die("unshare", "net");
  char go;
  ssize_t n;
  do n = read(sync_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(125); /* the parent gave up */
  close(sync_fd);
  if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0)
    die("setresuid", "0");
  if (syscall(SYS_setgroups, 0, NULL) != 0) die("setgroups", "0");
  if (unshare(CLONE_NEWCGROUP) != 0) die("unshare", "cgroup");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make private", "/");
  mount_plan(lowerdir, proc_files, proc_dirs, proc_ro);
  /* Already in the new root: pivot_root(".", ".") stacks the old root on it, then detach. */
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root", ".");
  if (umount2(".", MNT_DETACH) != 0) die("detach the old root", "/");
  if (chdir("/") != 0) die("chdir", "/");
  if (sethostname(HOSTNAME, sizeof HOSTNAME - 1) != 0) die("sethostname", HOSTNAME);
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket", "AF_INET");
  struct ifreq ifr = {0};
  memcpy(ifr.ifr_name, "lo", 3);
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) die("SIOCSIFFLAGS", "lo");
  close(sock);
  const struct rlimit nofile = {1024, 4096}, core = {0, 0}; /* spec.cc DefaultRlimits */
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) die("setrlimit", "NOFILE");
  if (setrlimit(RLIMIT_CORE, &core) != 0) die("setrlimit", "CORE");
  drop_capabilities(cap_last_cap);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("prctl", "no_new_privs");
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter) != 0) die("seccomp", "filter");
  extern char **environ;
  execve(cmd[0], cmd, environ);
  fprintf(stderr, "fullfloor-exec: exec %s: %s\n", cmd[0], strerror(errno));
  _exit(errno == ENOENT ? 127 : 126);
}

/* ember's cache file: "EMBRBPF1", policy key, count (u32), 0 (u32), checksum, then the
 * instructions (seccomp.cc SerializeBpf); a file without the magic is taken as bare
 * instructions. */
static struct sock_fprog read_filter(const char *path) {
  static char buf[32 + 8 * BPF_MAXINSNS];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  ssize_t size = read(fd, buf, sizeof buf);
  if (size < 0) die("read", path);
  close(fd);
  size_t off = 0;
  if (size >= 32 && memcmp(buf, "EMBRBPF1", 8) == 0) off = 32;
  size_t count = (size_t)(size - off) / sizeof(struct sock_filter);
  if (count == 0 || count > BPF_MAXINSNS || (size - off) % sizeof(struct sock_filter) != 0) {
    fprintf(stderr, "fullfloor-exec: %s: not a BPF program (%zd bytes)\n", path, size);
    exit(2);
  }
  struct sock_fprog prog = {(unsigned short)count, (struct sock_filter *)(buf + off)};
  return prog;
}

int main(int argc, char **argv) {
  if (argc < 10) {
    fprintf(stderr,
            "usage: fullfloor-exec BPF LOWER STAGING CAP_LAST_CAP PROC_FILES PROC_DIRS PROC_RO "
            "CGROUP_PROCS... -- CMD\n");
    return 2;
  }
  struct sock_fprog filter = read_filter(argv[1]);
  if (chdir(argv[2]) != 0) die("chdir", argv[2]);
  const char *lowerdir = ".";
  snprintf(staging_buf, sizeof staging_buf, "%s", argv[3]);
  int cap_last_cap = atoi(argv[4]);
  int i = 8;
  while (i < argc && strcmp(argv[i], "--") != 0) ++i;
  if (i + 1 >= argc) {
    fprintf(stderr, "fullfloor-exec: no command after --\n");
    return 2;
  }
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) die("pipe", "");
  struct clone_args_v0 args = {0};
  args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) die("clone3", "");
  if (pid == 0) {
    close(sync[1]);
    child(sync[0], lowerdir, cap_last_cap, argv[5], argv[6], argv[7], &filter, &argv[i + 1]);
  }
  close(sync[0]);
  char path[64], value[32];
  snprintf(path, sizeof path, "/proc/%ld/uid_map", pid);
  write_file(path, ID_MAP);
  snprintf(path, sizeof path, "/proc/%ld/gid_map", pid);
  write_file(path, ID_MAP);
  snprintf(value, sizeof value, "%ld", pid);
  for (int k = 8; k < i; ++k) write_file(argv[k], value);
  if (write(sync[1], "1", 1) != 1) die("release", "child");
  close(sync[1]);
  int status;
  while (waitpid((pid_t)pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid", "");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
