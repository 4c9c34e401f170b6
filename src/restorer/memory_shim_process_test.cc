// The memory shim and the rest of the process: SIGSYS that is not the shim's, the process's own
// sigaction(SIGSYS) (vfork children included), programs it executes, the sandbox's seccomp
// policy, install errors. Helpers
// and the forked-child scheme: memory_shim_test_support.h.
#include <errno.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <string>

#include "restorer/memory_shim.h"
#include "restorer/memory_shim_filter.h"
#include "restorer/memory_shim_test_support.h"
#include "sandbox/seccomp.h"

namespace ember::restorer::shim_test {
namespace {

TEST(MemoryShimProcess, ProgramsTheProcessExecutesAreNotTrapped) {
  // The filter outlives execve, the handler does not: a trap would kill the new program.
  // Python queries every signal's action at startup and here also sets SIGSYS's; its malloc
  // trims with madvise.
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0) GTEST_SKIP() << "no " << python;
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    const pid_t pid = fork();
    if (pid == 0) {
      execl(python, python, "-c",
            "import signal, mmap\n"
            "signal.signal(signal.SIGSYS, signal.SIG_IGN)\n"
            "m = mmap.mmap(-1, 1 << 20)\n"
            "m.madvise(mmap.MADV_DONTNEED)\n"
            "m.resize(2 << 20)\n"
            "import subprocess\n"
            "subprocess.run(['/bin/true'], check=True)\n",
            nullptr);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    c.Expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, __LINE__,
             "python exited with status " + std::to_string(status));
  }));
}

TEST(MemoryShimProcess, WorksUnderTheSandboxsStrictPolicy) {
  // The restorer installs the shim, then each thread the sandbox's allowlist. That list does
  // not allow PROCMAP_QUERY (ioctl requests are listed one by one): the text serves instead.
  auto strict = sandbox::CompileSeccomp(sandbox::SeccompPolicy::kStrict);
  ASSERT_TRUE(strict.has_value()) << strict.error().ToString();
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = static_cast<char*>(
        mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK_IN_CHILD(c, p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    CHECK_IN_CHILD(c, file.Map(4, PROT_READ | PROT_WRITE, p + 2 * kPage) == p + 2 * kPage);
    CHECK_IN_CHILD(c, Install(file) == 0);
    CHECK_IN_CHILD(c, sandbox::InstallSeccomp(*strict) == 0);
    CHECK_IN_CHILD(c, madvise(p + 3 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + 3 * kPage) && PageIs(p + 4 * kPage, 2));
    void* q = mremap(p, 8 * kPage, 12 * kPage, MREMAP_MAYMOVE);
    CHECK_IN_CHILD(c, q != MAP_FAILED);
    if (q == MAP_FAILED) return;
    char* g = static_cast<char*>(q);
    CHECK_IN_CHILD(c, PageIs(g + 2 * kPage, 0) && PageIsZero(g + 3 * kPage));
    CHECK_IN_CHILD(c, PageIs(g + 5 * kPage, 3) && PageIsZero(g + 11 * kPage));
  }));
}

TEST(MemoryShimProcess, InstallRefusesAWrongImageAndASecondInstall) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    MemoryShimConfig wrong = file.Config();
    wrong.image_ino += 1;
    CHECK_IN_CHILD(c, InstallMemoryShim(wrong) == -ENOENT);
    CHECK_IN_CHILD(c, InstallMemoryShim(file.Config()) == 0);
    CHECK_IN_CHILD(c, InstallMemoryShim(file.Config()) == -EBUSY);
  }));
}

// A second filter that traps getppid, as the process's own seccomp use would.
bool TrapGetppid(uint32_t data) {
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP | data),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog fprog{sizeof(program) / sizeof(program[0]), program};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0;
}

TEST(MemoryShimProcess, ForeignSigsysWithoutAHandlerKillsAsBefore) {
  PatternFile file(4);
  const ChildResult result = RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(7));
    syscall(SYS_getppid);
    c.Expect(false, __LINE__, "survived a foreign seccomp trap");
  });
  EXPECT_TRUE(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSYS)
      << result.status << " " << result.failures;
}

int g_foreign_errno = -1;
void ForeignHandler(int, siginfo_t* info, void* context) {
  g_foreign_errno = info->si_errno;
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = 1234;
}

TEST(MemoryShimProcess, ForeignSigsysGoesToTheProcessHandler) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    struct sigaction action {};
    action.sa_sigaction = ForeignHandler;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &action, nullptr);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(7));
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 1234);
    CHECK_IN_CHILD(c, g_foreign_errno == 7);
    // The shim still works after forwarding.
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
  }));
}

TEST(MemoryShimProcess, SentSigsysIsIgnoredWhenTheProcessIgnoredIt) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    signal(SIGSYS, SIG_IGN);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    CHECK_IN_CHILD(c, raise(SIGSYS) == 0);
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
  }));
}

int g_madvise_in_handler = -2;
char* g_handler_page = nullptr;
void HandlerThatFreesMemory(int, siginfo_t*, void* context) {
  g_madvise_in_handler = madvise(g_handler_page, kPage, MADV_DONTNEED);
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = 0;
}

TEST(MemoryShimProcess, ForeignSigsysHandlerThatFreesImageMemoryReachesTheShim) {
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    struct sigaction action {};
    action.sa_sigaction = HandlerThatFreesMemory;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &action, nullptr);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(9));
    if (p == nullptr) return;
    g_handler_page = p + kPage;
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 0);
    CHECK_IN_CHILD(c, g_madvise_in_handler == 0 && PageIsZero(p + kPage));
  }));
}

constexpr int kSysSeccomp = 1;  // si_code of a seccomp SIGSYS (glibc 2.36 has no SYS_SECCOMP)
int g_own_code = -1;
int g_own_errno = -1;
void OwnHandler(int, siginfo_t* info, void* context) {
  g_own_code = info->si_code;
  g_own_errno = info->si_errno;
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = 0;
}

TEST(MemoryShimProcess, SigactionOfSigsysReachesTheKernel) {
  // Not trapped: a query reads the shim's handler, and a handler set after the install
  // replaces it (memory_shim.h, limits). Putting the shim's action back restores the shim.
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    signal(SIGSYS, SIG_IGN);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    struct sigaction shims {};
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &shims) == 0);
    CHECK_IN_CHILD(c, shims.sa_handler != SIG_IGN && shims.sa_handler != SIG_DFL &&
                          (shims.sa_flags & SA_SIGINFO) != 0);
    struct sigaction own {};
    own.sa_sigaction = OwnHandler;
    own.sa_flags = SA_SIGINFO;
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &own, nullptr) == 0);
    const uint64_t traps = MemoryShimTrapCount();
    // The trapped call is not made: the page keeps the image's bytes.
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIs(p, 0));
    CHECK_IN_CHILD(c, g_own_code == kSysSeccomp && g_own_errno == static_cast<int>(kShimTrapData));
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == traps);
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &shims, nullptr) == 0);
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
    CHECK_IN_CHILD(c, MemoryShimTrapCount() == traps + 1);
  }));
}

// What CPython's _posixsubprocess does in its vfork child: every handled signal back to
// SIG_DFL (the shim's SIGSYS handler included). False if SIGSYS could not be read or reset.
bool ResetHandledSignals() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  bool sigsys_reset = false;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction seen {};
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, nullptr, &seen) != 0) continue;
    if (seen.sa_handler == SIG_DFL || seen.sa_handler == SIG_IGN) continue;
    if (sigaction(sig, &default_action, nullptr) != 0) return false;
    if (sig == SIGSYS) sigsys_reset = true;
  }
  return sigsys_reset;
}

// vfork, then in the child ResetHandledSignals and _exit(0), or exec /bin/true with `mask` (the
// parent's mask before it blocked everything). Returns the child's wait status, -1 on failure.
// A function of its own: no caller's variable lives across vfork (-Wclobbered).
int VforkChildThatResetsSignals(bool exec, const sigset_t* mask) {
  const pid_t pid = vfork();
  if (pid == 0) {
    if (!ResetHandledSignals()) _exit(2);
    if (exec) {
      sigprocmask(SIG_SETMASK, mask, nullptr);
      execl("/bin/true", "/bin/true", nullptr);
      _exit(127);
    }
    _exit(0);
  }
  int status = -1;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

TEST(MemoryShimProcess, VforkChildWithEverySignalBlockedMaySetSigsys) {
  // CPython's subprocess: every signal blocked, vfork, the child reads and resets every
  // signal's action (from the parent's libc: inside the code ranges), then execs. Were
  // rt_sigaction(SIGSYS) trapped, the forced SIGSYS on a blocked signal would kill the child.
  PatternFile file(4);
  ExpectCleanExit(RunInChild([&](Checks& c) {
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0);
    if (p == nullptr) return;
    struct sigaction before {};
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &before) == 0);
    sigset_t all, old;
    sigfillset(&all);
    CHECK_IN_CHILD(c, sigprocmask(SIG_BLOCK, &all, &old) == 0);
    for (const bool exec : {false, true}) {
      const int status = VforkChildThatResetsSignals(exec, &old);
      c.Expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, __LINE__,
               "vfork child (exec " + std::to_string(exec) + ") ended with status " +
                   std::to_string(status));
    }
    CHECK_IN_CHILD(c, sigprocmask(SIG_SETMASK, &old, nullptr) == 0);
    // The children's reset changed only their own actions: the shim still serves the parent.
    struct sigaction after {};
    CHECK_IN_CHILD(
        c, sigaction(SIGSYS, nullptr, &after) == 0 && after.sa_sigaction == before.sa_sigaction);
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
  }));
}

}  // namespace
}  // namespace ember::restorer::shim_test
