#include "sandbox/seccomp_policy.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace ember::sandbox {
namespace {

// Modelled on Moby's default profile (profiles/seccomp/default.json), narrowed: what a normal
// glibc program, busybox or CPython needs, and nothing that reaches kernel-wide state. x86_64
// names only; a name libseccomp cannot resolve fails the compile (so typos cannot hide).
// Grouped tables read better than one name per line:
// clang-format off
constexpr const char* kAllowAlways[] = {
    // files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3",
    "lseek", "fcntl", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    "truncate", "ftruncate", "fallocate", "fadvise64", "readahead", "sendfile", "copy_file_range",
    "splice", "tee", "vmsplice", "pipe", "pipe2", "memfd_create",
    // metadata and directories
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat",
    "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "symlink",
    "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
    "lchown", "fchownat", "umask", "mknod", "mknodat", "utime", "utimes", "futimesat",
    "utimensat", "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "pkey_alloc", "pkey_free",
    "pkey_mprotect",
    // processes and threads (clone is conditional, below)
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "getpid",
    "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address",
    "set_robust_list", "get_robust_list", "rseq", "arch_prctl", "prctl", "set_thread_area",
    "get_thread_area", "futex", "sched_yield", "sched_getaffinity", "sched_setaffinity",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_getattr", "sched_setattr", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    "getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "getcpu",
    "pidfd_open", "pidfd_send_signal", "capget", "capset", "seccomp", "landlock_create_ruleset",
    "landlock_add_rule", "landlock_restrict_self",
    // credentials: only ever within the sandbox's user namespace, and capabilities are gone
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
    "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
    "setfsgid",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill", "tkill",
    "tgkill", "pause", "restart_syscall", "signalfd", "signalfd4",
    // time and timers (reading the clock only; setting it is denied)
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "adjtimex", "clock_adjtime",  // read-only without CAP_SYS_TIME
    // event loops
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    // sockets (socket and socketpair are conditional, below)
    "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt",
    "getsockopt",
    // System V and POSIX IPC: scoped by the sandbox's IPC namespace
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    // kernel AIO (not io_uring: see kDenied)
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "getrandom",
};

// Refused on purpose, each for a reason that is not "nobody needs it":
constexpr const char* kDenied[] = {
    // the sandbox's own mount tree and namespaces are ember's, not the function's
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig",
    "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
    // reading or writing another process's memory or descriptors
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
    // kcmp: only CRIU-like tools need it, and it exposes kernel object ordering (heap grooming)
    "kcmp",
    // the kernel itself: modules, kexec, eBPF, perf, keyrings, logs, accounting, quotas, swap
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "syslog", "acct", "quotactl",
    "quotactl_fd", "swapon", "swapoff", "reboot", "lookup_dcookie", "fanotify_init",
    "fanotify_mark", "uselib", "vhangup", "sethostname", "setdomainname",
    // file handles bypass path-based confinement (the "shocker" escape)
    "open_by_handle_at", "name_to_handle_at",
    // userfaultfd stalls kernel threads at chosen points: a favourite for exploiting races
    "userfaultfd",
    // io_uring executes syscalls from kernel workers, outside this filter
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    // hardware and clocks
    "iopl", "ioperm", "modify_ldt", "settimeofday", "clock_settime",
    // NUMA placement of other processes' or host memory
    "mbind", "migrate_pages", "move_pages", "set_mempolicy", "get_mempolicy",
    // 32-bit personalities beyond the harmless ones are handled in the personality rule
};

// CLONE_NEWTIME is absent on purpose: it shares its bit with the exit-signal byte of the legacy
// clone call (the kernel only accepts it through clone3/unshare, both refused here).
constexpr uint64_t kCloneNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                          CLONE_NEWCGROUP;

// termios2 requests, spelled as numbers: <asm/termbits.h> and glibc's <termios.h> cannot both
// be included. glibc >= 2.42 uses these for tcgetattr/tcsetattr.
constexpr uint32_t kTCGETS2 = 0x802c542a, kTCSETS2 = 0x402c542b, kTCSETSW2 = 0x402c542c,
                   kTCSETSF2 = 0x402c542d;

// The kernel truncates an ioctl request to unsigned int, so every comparison is on the low 32
// bits (SCMP_CMP_MASKED_EQ): a rule on the full 64-bit value could be dodged by setting high
// bits. Not allowed, notably: TIOCSTI and TIOCLINUX (inject input into the terminal),
// TIOCSCTTY/TIOCNOTTY (controlling-terminal theft), and every device-specific request.
// PROCMAP_QUERY (Linux 6.11; Debian 12's headers predate it): a lookup in a /proc/PID/maps the
// caller already opened, i.e. what reading that file shows. The memory shim of a restored
// process (src/restorer/memory_shim.h) uses it: 16 us per trapped madvise instead of 45 through
// the text.
constexpr uint32_t kProcmapQuery = 0xc0686611;
constexpr std::array<uint32_t, 24> kIoctls = {
    TCGETS, TCSETS, TCSETSW, TCSETSF, kTCGETS2, kTCSETS2, kTCSETSW2, kTCSETSF2,
    TCFLSH,      // tcflush(): discards the caller's own terminal queue
    TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP, TIOCSPGRP,
    TIOCGSID,    // tcgetsid(): a read of the session the caller can see anyway
    TIOCGPTN, TIOCSPTLCK,  // openpty() on the sandbox's own /dev/pts
    TIOCOUTQ,    // bytes not yet sent; same family as FIONREAD
    FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, FIOASYNC,
    TCSBRK,      // tcdrain()
    kProcmapQuery,
};

// personality(): the query and the values glibc, Python and `setarch` use harmlessly. Not
// ADDR_NO_RANDOMIZE (would turn ASLR off for everything the sandbox execs).
constexpr uint32_t kPersonalities[] = {0x0 /* PER_LINUX */, 0x8 /* PER_LINUX32 */,
                                       0x20000 /* UNAME26 */, 0x20008, 0xffffffff /* query */};
// clang-format on

ArgCheck Low32Eq(unsigned arg, uint64_t value) {
  return {arg, SCMP_CMP_MASKED_EQ, value & 0xffffffffULL, 0xffffffffULL};
}

PolicyTable MakeStrict() {
  PolicyTable t{SeccompPolicy::kStrict, {}, {}};
  for (const char* name : kAllowAlways) t.rules.push_back({name});
  // clone without namespace flags: fork, threads, posix_spawn's CLONE_VM|CLONE_VFORK.
  t.rules.push_back({"clone", SCMP_ACT_ALLOW, {{0, SCMP_CMP_MASKED_EQ, 0, kCloneNamespaceFlags}}});
  // clone3 takes its flags in memory, which seccomp cannot read; ENOSYS makes glibc (>= 2.34)
  // fall back to clone, where the flags are checked.
  t.rules.push_back({"clone3", SCMP_ACT_ERRNO(ENOSYS)});
  for (uint32_t request : kIoctls)
    t.rules.push_back({"ioctl", SCMP_ACT_ALLOW, {Low32Eq(1, request)}});
  for (uint32_t persona : kPersonalities) {
    t.rules.push_back({"personality", SCMP_ACT_ALLOW, {Low32Eq(0, persona)}});
  }
  // Sockets: local, IP and rtnetlink (getifaddrs) only; AF_PACKET, AF_VSOCK, AF_ALG, … are out.
  // IP sockets must be stream or datagram (low 4 bits of the type; the rest are NONBLOCK and
  // CLOEXEC): no SOCK_RAW even though CAP_NET_RAW is gone anyway.
  t.rules.push_back({"socket", SCMP_ACT_ALLOW, {Low32Eq(0, AF_UNIX)}});
  for (int family : {AF_INET, AF_INET6}) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      t.rules.push_back({"socket",
                         SCMP_ACT_ALLOW,
                         {Low32Eq(0, family), {1, SCMP_CMP_MASKED_EQ, uint64_t(type), 0xf}}});
    }
  }
  t.rules.push_back(
      {"socket", SCMP_ACT_ALLOW, {Low32Eq(0, AF_NETLINK), Low32Eq(2, NETLINK_ROUTE)}});
  t.rules.push_back({"socketpair", SCMP_ACT_ALLOW, {Low32Eq(0, AF_UNIX)}});
  for (const char* name : kDenied) t.denied.emplace_back(name);
  return t;
}

// The syscalls kTemplate adds to kStrict, and the namespace flags its clone may carry. The new
// mount API (fsopen … move_mount) builds each child's rootfs ahead as detached trees, which the
// child attaches (sandbox/fork_rootfs.h): the same mounts `mount` already allows, made by fd.
constexpr std::array<const char*, 10> kTemplateExtras = {
    "mount",  "umount2",  "pivot_root", "sethostname", "mount_setattr",
    "fsopen", "fsconfig", "fsmount",    "open_tree",   "move_mount"};
constexpr uint64_t kTemplateForbiddenCloneFlags = CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWCGROUP;

PolicyTable MakeTemplate() {
  PolicyTable t = MakeStrict();
  t.policy = SeccompPolicy::kTemplate;
  for (const char* name : kTemplateExtras) t.rules.push_back({name});
  t.rules.push_back(
      {"clone", SCMP_ACT_ALLOW, {{0, SCMP_CMP_MASKED_EQ, 0, kTemplateForbiddenCloneFlags}}});
  t.rules.push_back({"unshare", SCMP_ACT_ALLOW, {Low32Eq(0, CLONE_NEWCGROUP)}});
  // A child joins its pooled network namespace, and the mount, ipc and uts namespaces its
  // template made ahead for it (sandbox/fork_shell.h). Never a user, pid or cgroup one.
  for (int type : {CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS}) {
    t.rules.push_back({"setns", SCMP_ACT_ALLOW, {Low32Eq(1, static_cast<uint32_t>(type))}});
  }
  std::erase_if(t.denied, [](const std::string& name) {
    return name == "unshare" || name == "setns" ||
           std::find(kTemplateExtras.begin(), kTemplateExtras.end(), name) != kTemplateExtras.end();
  });
  return t;
}

std::string ActionName(uint32_t action) {
  if (action == SCMP_ACT_ALLOW) return "allow";
  if ((action & 0xffff0000U) == SCMP_ACT_ERRNO(0))
    return "errno(" + std::to_string(action & 0xffff) + ")";
  char buf[32];
  std::snprintf(buf, sizeof buf, "action(0x%x)", action);
  return buf;
}

}  // namespace

const PolicyTable& GetPolicyTable(SeccompPolicy policy) {
  static const PolicyTable strict = MakeStrict();
  static const PolicyTable fork_template = MakeTemplate();
  return policy == SeccompPolicy::kTemplate ? fork_template : strict;
}

std::string_view PolicyName(SeccompPolicy policy) {
  switch (policy) {
    case SeccompPolicy::kStrict:
      return "strict";
    case SeccompPolicy::kTemplate:
      return "template";
  }
  return "unknown";
}

std::span<const uint32_t> AllowedIoctls() { return kIoctls; }

std::string RenderPolicy(const PolicyTable& table) {
  std::string out = "policy " + std::string(PolicyName(table.policy)) + " v" +
                    std::to_string(kSeccompPolicyVersion) + " default errno(" +
                    std::to_string(kDeniedErrno) + ") badarch errno(" +
                    std::to_string(kBadArchErrno) + ")\n";
  for (const auto& rule : table.rules) {
    out += rule.name + " " + ActionName(rule.action);
    for (const auto& c : rule.checks) {
      char buf[96];
      std::snprintf(buf, sizeof buf, " arg%u op%d mask=0x%llx value=0x%llx", c.arg,
                    static_cast<int>(c.op), static_cast<unsigned long long>(c.mask),
                    static_cast<unsigned long long>(c.value));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

Status ApplyPolicy(const PolicyTable& table, scmp_filter_ctx ctx) {
  struct Attr {
    scmp_filter_attr attr;
    uint32_t value;
    const char* name;
  };
  // NNP off: ember sets no_new_privs itself in InstallSeccomp, libseccomp never loads this.
  // Optimize level 2: a binary tree of syscall numbers instead of a linear scan.
  for (const Attr& a :
       {Attr{SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(kBadArchErrno), "badarch"},
        Attr{SCMP_FLTATR_CTL_NNP, 0, "nnp"}, Attr{SCMP_FLTATR_CTL_OPTIMIZE, 2, "optimize"}}) {
    int rc = seccomp_attr_set(ctx, a.attr, a.value);
    if (rc != 0) return FailErrno(std::string("seccomp_attr_set ") + a.name, -rc);
  }
  for (const auto& rule : table.rules) {
    int nr = seccomp_syscall_resolve_name(rule.name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      return Fail(ErrorCode::kUnsupported,
                  "seccomp policy " + std::string(PolicyName(table.policy)) + ": libseccomp " +
                      "does not know syscall '" + rule.name + "'");
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& c : rule.checks) {
      scmp_arg_cmp cmp{};
      cmp.arg = c.arg;
      cmp.op = c.op;
      // For MASKED_EQ libseccomp reads datum_a as the mask and datum_b as the value.
      cmp.datum_a = c.op == SCMP_CMP_MASKED_EQ ? c.mask : c.value;
      cmp.datum_b = c.op == SCMP_CMP_MASKED_EQ ? c.value : 0;
      cmps.push_back(cmp);
    }
    // _exact: libseccomp must not silently rewrite a rule it cannot express.
    int rc = seccomp_rule_add_exact_array(ctx, rule.action, nr, static_cast<unsigned>(cmps.size()),
                                          cmps.empty() ? nullptr : cmps.data());
    if (rc != 0) {
      return FailErrno("seccomp policy " + std::string(PolicyName(table.policy)) + ": add rule " +
                           rule.name + " " + ActionName(rule.action),
                       -rc);
    }
  }
  return Ok();
}

}  // namespace ember::sandbox
