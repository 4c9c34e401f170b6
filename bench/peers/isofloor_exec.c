/* The floor of `ember run`'s mandated rootfs and cgroup (bench/peers/tools.py, IsoFloor).
 *
 * Runs as pid 1 of the namespaces `unshare --mount --pid --net --ipc --uts --fork` made (the
 * same ones as the unshare+chroot baseline) and does, in one dynamically linked binary so that
 * it costs one exec like the baseline's chroot(1), the kernel work issue 2 mandates for the
 * rootfs and the cgroup, and nothing else:
 *
 *   1. enters the pre-created cgroups (one `cgroup.procs` per controller, written "0" = self),
 *      before anything is charged, as a sandbox is in its cgroup before it runs;
 *   2. mounts a size-capped tmpfs on LAYER, makes upper/ and work/ in it, and an overlay on
 *      ROOT with the image as its only lower layer;
 *   3. pivot_root into the overlay and detaches the old root (umount2 MNT_DETACH);
 *   4. mounts a fresh /proc;
 *   5. execs the command with the caller's environment.
 *
 * No seccomp, no capability drop, no user namespace, no /dev: it is a floor.
 *
 *   isofloor-exec LOWER LAYER ROOT TMPFS_SIZE CGROUP_PROCS... -- CMD [ARGS...]
 *
 * Built by the benchmark (cc -O2) into its scratch dir; not part of ember.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
  fprintf(stderr, "isofloor-exec: %s %s: %s\n", what, path, strerror(errno));
  _exit(127);
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: isofloor-exec LOWER LAYER ROOT TMPFS_SIZE CGROUP_PROCS... -- CMD\n");
    return 2;
  }
  const char *lower = argv[1], *layer = argv[2], *root = argv[3], *size = argv[4];
  int i = 5;
  for (; i < argc && strcmp(argv[i], "--") != 0; ++i) {
    int fd = open(argv[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) die("enter cgroup", argv[i]);
    close(fd);
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "isofloor-exec: no command after --\n");
    return 2;
  }
  char opts[4096];
  snprintf(opts, sizeof opts, "mode=0755,size=%s", size);
  if (mount("tmpfs", layer, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) die("mount tmpfs", layer);
  char upper[4096], work[4096];
  snprintf(upper, sizeof upper, "%s/upper", layer);
  snprintf(work, sizeof work, "%s/work", layer);
  if (mkdir(upper, 0755) != 0) die("mkdir", upper);
  if (mkdir(work, 0755) != 0) die("mkdir", work);
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  if (mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts) != 0) die("mount overlay", root);
  /* pivot_root(".", ".") stacks the old root under the new one at "/"; the detach takes it off
   * without needing a directory for it in the image. */
  if (chdir(root) != 0) die("chdir", root);
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root", root);
  if (umount2(".", MNT_DETACH) != 0) die("detach the old root", "/");
  if (chdir("/") != 0) die("chdir", "/");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
    die("mount", "/proc");
  }
  extern char **environ;
  execve(argv[i + 1], &argv[i + 1], environ);
  die("exec", argv[i + 1]);
  return 127;
}
