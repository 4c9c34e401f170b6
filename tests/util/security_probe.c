// security_probe: runs inside a sandbox and tries to get out. Static, so it needs nothing from
// the image. Without arguments it attempts every escape below and prints one line per check:
//
//   NAME errno=ENAME   the attempt failed with that errno (what a sandbox should produce)
//   NAME ok            the attempt SUCCEEDED (a hole, unless the check says otherwise)
//
// Checks that are observations rather than one syscall (can a host pid or namespace be seen?)
// print errno=ENOENT when nothing of the host was found and "ok" when something was.
// The program always exits 0; the test (tests/integration/security_test.cc) judges the lines.
//
// With an argument it runs one resource bomb instead: forkbomb, memory, disk, fds, spin.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char* name, long ret, int err) {
  if (ret >= 0) {
    printf("%s ok\n", name);
  } else {
    const char* ename = strerrorname_np(err);
    printf("%s errno=%s\n", name, ename ? ename : "E?");
  }
  fflush(stdout);
}

#define CHECK(name, expr)      \
  do {                         \
    errno = 0;                 \
    long ret_ = (long)(expr);  \
    report(name, ret_, errno); \
  } while (0)

static void check_setns(const char* ns, int nstype) {
  char path[64], name[32];
  snprintf(path, sizeof path, "/proc/1/ns/%s", ns);
  snprintf(name, sizeof name, "setns_%s", ns);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    report(name, -1, errno);
    return;
  }
  CHECK(name, syscall(SYS_setns, fd, nstype));
  close(fd);
}

// Every namespace reachable through /proc/<pid>/ns must be one of ours: /proc shows only the
// sandbox's own pid namespace, so a differing inode would be a host (or foreign) namespace.
static void check_foreign_namespaces(void) {
  const char* kinds[] = {"mnt", "net", "pid", "user", "ipc", "uts", "cgroup"};
  int foreign = 0, processes = 0;
  DIR* proc = opendir("/proc");
  struct dirent* e;
  while (proc != NULL && (e = readdir(proc)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    ++processes;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; ++k) {
      char theirs[300], ours[64];
      struct stat a, b;
      snprintf(theirs, sizeof theirs, "/proc/%s/ns/%s", e->d_name, kinds[k]);
      snprintf(ours, sizeof ours, "/proc/self/ns/%s", kinds[k]);
      if (stat(theirs, &a) == 0 && stat(ours, &b) == 0 && a.st_ino != b.st_ino) {
        printf("# foreign %s namespace via %s\n", kinds[k], theirs);
        ++foreign;
      }
    }
  }
  if (proc != NULL) closedir(proc);
  report("host_namespaces_via_proc", foreign > 0 ? 0 : -1, ENOENT);
  // Paths where a host's namespaces are commonly bind-mounted.
  const char* pinned[] = {"/run/netns", "/var/run/netns", "/run/docker/netns", "/run/ember"};
  int found = 0;
  for (size_t i = 0; i < sizeof pinned / sizeof *pinned; ++i) {
    struct stat st;
    if (stat(pinned[i], &st) == 0) {
      printf("# found %s\n", pinned[i]);
      ++found;
    }
  }
  report("host_namespaces_pinned", found > 0 ? 0 : -1, ENOENT);

  // A host pid answers kill(pid, 0) with 0 or EPERM; in a pid namespace only our own tasks do,
  // and each of those (threads too, which /proc does not list) has its /proc/<pid>.
  int outsiders = 0;
  for (pid_t pid = 1; pid <= 32768; ++pid) {
    if (kill(pid, 0) != 0 && errno != EPERM) continue;
    char path[32];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    if (stat(path, &st) != 0) {
      printf("# pid %d answers signals but has no /proc entry\n", (int)pid);
      ++outsiders;
    }
  }
  printf("# /proc lists %d processes\n", processes);
  report("host_pids_visible", outsiders > 0 ? 0 : -1, ENOENT);
}

static void check_ptrace(void) {
  CHECK("ptrace_pid1", syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0));
  // Pids beyond the sandbox's: ESRCH (invisible) and EPERM (seccomp) both count as refused.
  int attached = 0, last_errno = ESRCH;
  for (pid_t pid = 2; pid <= 300; ++pid) {
    if (pid == getpid()) continue;
    if (syscall(SYS_ptrace, 16, pid, 0, 0) == 0) {
      ++attached;
      syscall(SYS_ptrace, 17 /* PTRACE_DETACH */, pid, 0, 0);
    } else if (errno != ESRCH) {
      last_errno = errno;
    }
  }
  report("ptrace_scan", attached > 0 ? 0 : -1, last_errno);
}

static void check_proc_root(void) {
  // /proc/1/root must be our own root: pid 1 is the sandbox's init, not the host's.
  struct stat theirs, ours;
  if (stat("/proc/1/root/", &theirs) != 0) {
    report("proc1_root_is_host", -1, errno);
    return;
  }
  stat("/", &ours);
  report("proc1_root_is_host",
         theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino ? -1 : 0, ENOENT);
}

static void check_chroot_escape(void) {
  mkdir("/tmp/chroot-sub", 0755);
  int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  errno = 0;
  if (chroot("/tmp/chroot-sub") != 0) {
    report("chroot_escape", -1, errno);
  } else {
    long ok = fchdir(root) == 0 && chroot(".") == 0 ? 0 : -1;
    report("chroot_escape", ok, errno);
  }
  close(root);
}

static void check_foreign_abis(void) {
  CHECK("x32_getpid", syscall(0x40000000 | SYS_getpid));
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L /* i386 getpid */) : "memory");
  report("int80_getpid", ret, ret < 0 ? (int)-ret : 0);
}

static void check_tiocsti(void) {
  char c = 'x';
  CHECK("tiocsti_stdin", ioctl(0, TIOCSTI, &c));
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) {
    report("tiocsti_devtty", -1, errno);
  } else {
    CHECK("tiocsti_devtty", ioctl(tty, TIOCSTI, &c));
    close(tty);
  }
}

static void check_devices(void) {
  const char* names[] = {"dev_mem", "dev_kmem", "dev_port", "dev_kmsg"};
  const char* paths[] = {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg"};
  for (int i = 0; i < 4; ++i) {
    int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
    report(names[i], fd, errno);
    if (fd >= 0) close(fd);
  }
  CHECK("mknod_block", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
}

static void all_checks(void) {
  CHECK("mount_tmpfs", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
  CHECK("umount_root", umount2("/", MNT_DETACH));
  CHECK("unshare_user", unshare(CLONE_NEWUSER));
  CHECK("unshare_mnt", unshare(CLONE_NEWNS));
  CHECK("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  CHECK("clone3", syscall(SYS_clone3, NULL, 0));
  check_setns("mnt", CLONE_NEWNS);
  check_setns("net", CLONE_NEWNET);
  check_setns("pid", CLONE_NEWPID);
  check_setns("user", CLONE_NEWUSER);
  check_foreign_namespaces();
  check_ptrace();
  check_proc_root();
  CHECK("process_vm_readv", syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0));
  CHECK("init_module", syscall(SYS_init_module, NULL, 0, ""));
  CHECK("finit_module", syscall(SYS_finit_module, 0, "", 0));
  CHECK("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  CHECK("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0, 0, 0));
  CHECK("bpf", syscall(SYS_bpf, 0, NULL, 0));
  CHECK("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  CHECK("userfaultfd", syscall(SYS_userfaultfd, 0));
  CHECK("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  CHECK("socket_raw", socket(AF_INET, SOCK_RAW, 1 /* ICMP */));
  CHECK("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
  CHECK("proc_sys_hostname", open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC));
  CHECK("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                          LINUX_REBOOT_CMD_CAD_OFF, NULL));
  check_chroot_escape();
  check_foreign_abis();
  CHECK("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
  CHECK("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0));
  check_tiocsti();
  check_devices();
}

// --- resource bombs: each prints one line and exits 0 if the limit stopped it ---

static int fork_bomb(void) {
  int made = 0;
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      sleep(3);  // hold the slot so the host can be checked while the limit is reached
      _exit(0);
    }
    if (pid < 0) break;
    ++made;
  }
  printf("forkbomb made=%d errno=%s\n", made, strerrorname_np(errno));
  fflush(stdout);
  while (wait(NULL) > 0) {
  }
  return 0;
}

static int memory_bomb(void) {
  for (size_t total = 0;; total += 1 << 20) {
    char* p = malloc(1 << 20);
    if (p == NULL) {
      printf("memory errno=ENOMEM after %zu MiB\n", total >> 20);
      return 0;
    }
    memset(p, 0xa5, 1 << 20);
  }
}

static int disk_fill(void) {
  int fd = open("/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return report("disk", -1, errno), 0;
  static char block[1 << 16];
  memset(block, 'x', sizeof block);
  long long written = 0;
  for (;;) {
    ssize_t n = write(fd, block, sizeof block);
    if (n < 0) break;
    written += n;
  }
  printf("disk written=%lld errno=%s\n", written, strerrorname_np(errno));
  return 0;
}

static int fd_exhaust(void) {
  int count = 0;
  while (open("/dev/null", O_RDONLY) >= 0) ++count;
  printf("fds opened=%d errno=%s\n", count, strerrorname_np(errno));
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    all_checks();
    return 0;
  }
  if (strcmp(argv[1], "forkbomb") == 0) return fork_bomb();
  if (strcmp(argv[1], "memory") == 0) return memory_bomb();
  if (strcmp(argv[1], "disk") == 0) return disk_fill();
  if (strcmp(argv[1], "fds") == 0) return fd_exhaust();
  if (strcmp(argv[1], "spin") == 0) {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  fprintf(stderr, "usage: security_probe [forkbomb|memory|disk|fds|spin]\n");
  return 2;
}
