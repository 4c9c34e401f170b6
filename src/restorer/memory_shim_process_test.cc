// The memory shim and the rest of the process: SIGSYS that is not the shim's, the process's own
// sigaction(SIGSYS), programs it executes, the sandbox's seccomp policy, install errors. Helpers
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
            "m.resize(2 << 20)\n",
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

TEST(MemoryShimProcess, ProcessSigactionOfSigsysIsKeptBesideTheShim) {
  PatternFile file(4);
  const ChildResult result = RunInChild([&](Checks& c) {
    signal(SIGSYS, SIG_IGN);
    char* p = file.Map(4);
    CHECK_IN_CHILD(c, p != nullptr && Install(file) == 0 && TrapGetppid(9));
    if (p == nullptr) return;
    // The process sees its own action, not the shim's.
    struct sigaction seen {};
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &seen) == 0 && seen.sa_handler == SIG_IGN);
    struct sigaction action {};
    action.sa_sigaction = ForeignHandler;
    action.sa_flags = SA_SIGINFO;
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &action, nullptr) == 0);
    CHECK_IN_CHILD(c, sigaction(SIGSYS, nullptr, &seen) == 0 &&
                          seen.sa_sigaction == ForeignHandler && (seen.sa_flags & SA_SIGINFO));
    // The shim still serves madvise; the process's handler gets the foreign trap.
    CHECK_IN_CHILD(c, madvise(p, kPage, MADV_DONTNEED) == 0 && PageIsZero(p));
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 1234 && g_foreign_errno == 9);
    // A handler that frees memory while handling SIGSYS reaches the shim too.
    g_handler_page = p + kPage;
    action.sa_sigaction = HandlerThatFreesMemory;
    CHECK_IN_CHILD(c, sigaction(SIGSYS, &action, nullptr) == 0);
    CHECK_IN_CHILD(c, syscall(SYS_getppid) == 0);
    CHECK_IN_CHILD(c, g_madvise_in_handler == 0 && PageIsZero(p + kPage));
    // A wrong sigset size and a bad oact are refused like the kernel refuses them.
    CHECK_IN_CHILD(c,
                   syscall(SYS_rt_sigaction, SIGSYS, nullptr, &seen, 16) == -1 && errno == EINVAL);
    CHECK_IN_CHILD(c, syscall(SYS_rt_sigaction, SIGSYS, nullptr, 8, 8) == -1 && errno == EFAULT);
    // Back to the default: a foreign trap kills again.
    signal(SIGSYS, SIG_DFL);
    CHECK_IN_CHILD(c, madvise(p + 2 * kPage, kPage, MADV_DONTNEED) == 0);
    CHECK_IN_CHILD(c, PageIsZero(p + 2 * kPage));
    const std::string text = c.out.str();
    if (!text.empty()) return;  // report the failures instead of dying below
    syscall(SYS_getppid);
    c.Expect(false, __LINE__, "survived a foreign seccomp trap with SIG_DFL");
  });
  EXPECT_TRUE(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSYS)
      << result.status << " " << result.failures;
}

}  // namespace
}  // namespace ember::restorer::shim_test
