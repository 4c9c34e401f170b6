// InstallLazyFiles and the listener handoff, without a reconnector: what a restored process
// looks like right after the install, and what it sees when nobody serves the listener. Each
// install runs in a forked child (a seccomp filter cannot be removed).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include "restorer/lazy_files.h"

namespace ember::restorer {
namespace {

// Runs `body` in a forked child whose fds 3..59 are closed; returns its exit code (or 100+signal).
int InChild(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    syscall(SYS_close_range, 3, 59, 0);
    _exit(body());
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

const LazyFile kFiles[] = {{7, O_RDONLY, 0, 1, "/etc/hostname"}, {9, O_RDWR, 10, 0, "/tmp/x"}};

TEST(InstallLazyFiles, PutsAPlaceholderOnEveryLazyNumber) {
  EXPECT_EQ(InChild([] {
              int listener = -1, placeholder = -1;
              if (InstallLazyFiles(kFiles, 2, &listener, &placeholder) != 0) return 1;
              // Both returned fds sit above the lazy numbers and are close-on-exec.
              if (listener <= 9 || placeholder <= 9 || listener == placeholder) return 2;
              if (fcntl(listener, F_GETFD) != FD_CLOEXEC) return 3;
              if (fcntl(placeholder, F_GETFD) != FD_CLOEXEC) return 4;
              // The process's own opens skip the lazy numbers (3..6 and 8 are free, 7 and 9 not).
              int fds[6];
              for (int& fd : fds) fd = open("/dev/null", O_RDONLY);
              if (fds[4] != 8 || fds[5] == 9) return 5;
              if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return 6;
              return 0;
            }),
            0);
}

TEST(InstallLazyFiles, RefusesATakenNumberAndARelativePath) {
  EXPECT_EQ(InChild([] {
              int listener = -1, placeholder = -1;
              if (dup2(0, 9) != 9) return 1;
              if (InstallLazyFiles(kFiles, 2, &listener, &placeholder) != -EBUSY) return 2;
              if (listener != -1 || placeholder != -1) return 3;
              if (fcntl(7, F_GETFD) != -1 || errno != EBADF) return 4;  // nothing left behind
              close(9);
              const LazyFile relative[] = {{7, O_RDONLY, 0, 0, "etc/hostname"}};
              if (InstallLazyFiles(relative, 1, &listener, &placeholder) != -EINVAL) return 5;
              return 0;
            }),
            0);
}

TEST(InstallLazyFiles, NothingToDoForNoFiles) {
  int listener = 0, placeholder = 0;
  EXPECT_EQ(InstallLazyFiles(nullptr, 0, &listener, &placeholder), 0);
  EXPECT_EQ(listener, -1);
  EXPECT_EQ(placeholder, -1);
}

TEST(InstallLazyFiles, WithoutAReconnectorLazyFdsAnswerEnosys) {
  // The documented failure mode: a filter whose listener is gone returns ENOSYS.
  EXPECT_EQ(InChild([] {
              int listener = -1, placeholder = -1;
              if (InstallLazyFiles(kFiles, 2, &listener, &placeholder) != 0) return 1;
              close(listener);
              char c;
              if (read(7, &c, 1) != -1 || errno != ENOSYS) return 2;
              if (read(8, &c, 1) != -1 || errno != EBADF) return 3;  // other fds unaffected
              return 0;
            }),
            0);
}

TEST(LazyHandoff, PassesListenerAndPlaceholderOverASocket) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int b = open("/", O_PATH | O_CLOEXEC);
  ASSERT_EQ(SendLazyHandoff(sv[0], a, b), 0);
  int x = -1, y = -1;
  ASSERT_EQ(ReceiveLazyHandoff(sv[1], &x, &y), 0);
  struct stat sa {
  }, sx{}, sb{}, sy{};
  ASSERT_EQ(fstat(a, &sa), 0);
  ASSERT_EQ(fstat(x, &sx), 0);
  ASSERT_EQ(fstat(b, &sb), 0);
  ASSERT_EQ(fstat(y, &sy), 0);
  EXPECT_EQ(sa.st_rdev, sx.st_rdev);
  EXPECT_EQ(sb.st_ino, sy.st_ino);
  EXPECT_EQ(fcntl(x, F_GETFD), FD_CLOEXEC);

  // Without a placeholder only the listener travels.
  ASSERT_EQ(SendLazyHandoff(sv[0], a, -1), 0);
  int x2 = -1, y2 = -1;
  ASSERT_EQ(ReceiveLazyHandoff(sv[1], &x2, &y2), 0);
  EXPECT_GE(x2, 0);
  EXPECT_EQ(y2, -1);

  // The peer going away before the handoff is an error, not a hang.
  close(sv[0]);
  EXPECT_EQ(ReceiveLazyHandoff(sv[1], &x2, &y2), -EPIPE);
  for (int fd : {sv[1], a, b, x, y, x2}) close(fd);
}

TEST(ServeLazyFiles, LeavesQuietlyWhenTheRestoreDiesBeforeTheHandoff) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    // Still holds sv[0] from the fork: ServeLazyFiles must close it, or it would wait forever.
    ServeLazyFiles(sv[1], kFiles, 2, -1);
  }
  close(sv[1]);
  close(sv[0]);  // the "restored process" is gone
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace ember::restorer
