// On-demand I/O reconnection end to end: a forked "restored process" installs the lazy-file
// filter and hands the listener to a reconnector process; the test reads what the process saw
// and the reconnector's reports of every open it did.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "restorer/lazy_files.h"
#include "sandbox/seccomp.h"

namespace ember::restorer {
namespace {

namespace fs = std::filesystem;

constexpr char kContent[] = "abcdefghijklmnopqrstuvwxyz";

// Where the restored process's own fds go, out of the way of the lazy numbers under test.
constexpr int kOutFd = 60;
constexpr int kSockFd = 61;

struct Outcome {
  int status = -1;              // the restored process's wait status
  int reconnector_status = -1;  // the reconnector's
  std::string output;           // what the restored process wrote to its out fd
  std::vector<ReconnectEvent> events;
};

// The restored process's body: runs with the filter installed; writes what it saw to `out`;
// returns its exit code.
using Body = std::function<int(int out)>;

void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n <= 0) _exit(90);
    p += n;
    size -= static_cast<size_t>(n);
  }
}
void WriteString(int fd, const std::string& s) { WriteAll(fd, s.data(), s.size()); }

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

class LazyReconnectTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;  // parameterized names contain '/'
    dir_ = fs::temp_directory_path() / ("ember-lazy-" + std::to_string(getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  bool UseKcmp() const { return GetParam(); }

  std::string MakeFile(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    paths_.push_back(path);
    return path;
  }

  Outcome RunRestored(const std::vector<LazyFile>& files, const Body& body) {
    int sv[2], ev[2], out[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_EQ(pipe2(ev, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    const int count = static_cast<int>(files.size());

    const pid_t reconnector = fork();
    if (reconnector == 0) {
      alarm(30);
      if (run_as_ != 0 && !DropTo(run_as_)) _exit(79);
      if (UseKcmp()) ServeLazyFiles(sv[1], files.data(), count, ev[1]);  // as the restorer does
      close(sv[0]);  // so a restored process that dies before the handoff gives EOF
      int listener = -1, placeholder = -1;
      if (ReceiveLazyHandoff(sv[1], &listener, &placeholder) != 0) _exit(80);
      if (!UseKcmp()) {
        close(placeholder);
        placeholder = -1;
      }
      RunReconnector(listener, placeholder, files.data(), count, ev[1]);
    }

    reconnector_pid_ = reconnector;
    const pid_t restored = fork();
    if (restored == 0) {
      alarm(30);
      if (run_as_ != 0) {
        // As ember-restore does after its uid switch (which clears the dumpable flag).
        if (!DropTo(run_as_) || prctl(PR_SET_DUMPABLE, dumpable_ ? 1 : 0, 0, 0, 0) != 0) _exit(84);
      }
      // The lazy numbers must be free: keep only stdio, the out pipe and the handoff socket.
      if (dup2(out[1], kOutFd) < 0 || dup2(sv[0], kSockFd) < 0) _exit(81);
      syscall(SYS_close_range, 3, kOutFd - 1, 0);
      syscall(SYS_close_range, kSockFd + 1, ~0U, 0);
      int listener = -1, placeholder = -1;
      const int r = InstallLazyFiles(files.data(), count, &listener, &placeholder);
      if (r != 0) {
        WriteString(kOutFd, "install: " + std::string(strerror(-r)));
        _exit(82);
      }
      if (SendLazyHandoff(kSockFd, listener, placeholder) != 0) _exit(83);
      close(listener);
      close(placeholder);
      close(kSockFd);
      _exit(body(kOutFd));
    }

    close(sv[0]);
    close(sv[1]);
    close(ev[1]);
    close(out[1]);
    if (close_events_early_) close(ev[0]);
    Outcome o;
    o.output = ReadAll(out[0]);
    close(out[0]);
    EXPECT_EQ(waitpid(restored, &o.status, 0), restored);
    const std::string events = close_events_early_ ? "" : ReadAll(ev[0]);  // EOF: it is gone
    if (!close_events_early_) close(ev[0]);
    EXPECT_EQ(waitpid(reconnector, &o.reconnector_status, 0), reconnector);
    EXPECT_EQ(events.size() % sizeof(ReconnectEvent), 0u);
    o.events.resize(events.size() / sizeof(ReconnectEvent));
    memcpy(o.events.data(), events.data(), o.events.size() * sizeof(ReconnectEvent));
    return o;
  }

  static void ExpectClean(const Outcome& o) {
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0)
        << "restored process status " << o.status << ", output: " << o.output;
    // The reconnector leaves on its own once the restored process is gone.
    EXPECT_TRUE(WIFEXITED(o.reconnector_status) && WEXITSTATUS(o.reconnector_status) == 0)
        << "reconnector status " << o.reconnector_status;
  }

  static bool DropTo(uid_t id) { return setresgid(id, id, id) == 0 && setresuid(id, id, id) == 0; }

  std::string dir_;
  std::vector<std::string> paths_;
  bool close_events_early_ = false;  // the test stops reading events before the process runs
  pid_t reconnector_pid_ = -1;       // known to the restored process's body (forked after it)
  uid_t run_as_ = 0;  // both processes switch to this uid before the handoff (0: stay root)
  bool dumpable_ = true;
};

// Reads n bytes from fd and writes them (or "E<errno>") to out.
void ReadTo(int fd, size_t n, int out) {
  std::string buf(n, '\0');
  const ssize_t r = read(fd, buf.data(), n);
  WriteString(out, r < 0 ? "E" + std::to_string(errno) : buf.substr(0, static_cast<size_t>(r)));
}

TEST_P(LazyReconnectTest, ReadReopensAtTheRecordedOffsetAndUntouchedFilesStayClosed) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 1, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 4, out);
    ReadTo(7, 2, out);  // the reopened file keeps its position
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fghijk");
  ASSERT_EQ(o.events.size(), 1u) << "fd 9 was never used and must not be opened";
  EXPECT_EQ(o.events[0].fd, 7);
  EXPECT_EQ(o.events[0].result, 0);
}

TEST_P(LazyReconnectTest, RestoresCloexecPerRecord) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 0, 1, a.c_str()},
                                       {9, O_RDONLY, 0, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(fcntl(7, F_GETFD)) + std::to_string(fcntl(9, F_GETFD)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "10");
  EXPECT_EQ(o.events.size(), 2u);
}

TEST_P(LazyReconnectTest, WriteThroughAnRdwrFdLandsAtTheOffset) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDWR, 4, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(write(7, "XY", 2)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "2");
  std::ifstream in(a);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "abcdXYghijklmnopqrstuvwxyz");
}

TEST_P(LazyReconnectTest, ClosingAPendingFdNeverReopensItAndTheNumberIsReusable) {
  const std::string a = MakeFile("a", kContent), other = MakeFile("other", "OTHER");
  // fd 3: the lowest free number once the process has closed the placeholder.
  const std::vector<LazyFile> files = {{3, O_RDONLY, 5, 0, a.c_str()}};
  const std::string other_path = other;
  const Outcome o = RunRestored(files, [&other_path](int out) {
    if (close(3) != 0) return 1;
    const int fd = open(other_path.c_str(), O_RDONLY);
    WriteString(out, std::to_string(fd) + ":");
    ReadTo(3, 5, out);
    struct stat st {};
    WriteString(out, fstat(3, &st) == 0 ? ":" + std::to_string(st.st_size) : ":E");
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "3:OTHER:5");
  EXPECT_TRUE(o.events.empty()) << "no reopen after close";
}

TEST_P(LazyReconnectTest, DupOntoAPendingFdDropsIt) {
  const std::string a = MakeFile("a", kContent), other = MakeFile("other", "OTHER");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const std::string other_path = other;
  const Outcome o = RunRestored(files, [&other_path](int out) {
    const int fd = open(other_path.c_str(), O_RDONLY);
    if (dup2(fd, 7) != 7) return 1;
    ReadTo(7, 5, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "OTHER");
  EXPECT_TRUE(o.events.empty());
}

TEST_P(LazyReconnectTest, AMissingFileFailsTheFirstUseWithEnoent) {
  const std::string missing = dir_ + "/deleted-since-checkpoint";
  const std::vector<LazyFile> files = {{7, O_RDONLY, 0, 0, missing.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 4, out);
    WriteString(out, ",");
    ReadTo(8, 4, out);  // an unrelated bad fd still gets EBADF
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "E" + std::to_string(ENOENT) + ",E" + std::to_string(EBADF));
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0].result, -ENOENT);
}

TEST_P(LazyReconnectTest, FstatAndLseekReopen) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    struct stat st {};
    if (fstat(7, &st) != 0) return 1;
    WriteString(out, std::to_string(st.st_size) + "," + std::to_string(st.st_ino) + ",");
    WriteString(out, std::to_string(lseek(9, 0, SEEK_CUR)) + ",");
    ReadTo(9, 2, out);
    return 0;
  });
  ExpectClean(o);
  struct stat st {};
  ASSERT_EQ(stat(a.c_str(), &st), 0);
  EXPECT_EQ(o.output, "26," + std::to_string(st.st_ino) + ",3,34");
  EXPECT_EQ(o.events.size(), 2u);
}

TEST_P(LazyReconnectTest, DupOfAPendingFdGivesAWorkingFd) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const int d = dup(7);
    if (d < 0) return 1;
    ReadTo(d, 3, out);
    ReadTo(7, 3, out);  // one open file description: the offset moved for both
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fghijk");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, MmapOfAPendingFdMapsTheFile) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    void* anon = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 7, 0);
    if (anon == MAP_FAILED) return 1;
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, 7, 0);
    if (p == MAP_FAILED) return 2;
    WriteString(out, std::string(static_cast<const char*>(p), 3));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "abc");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, CloseRangeDropsPendingFdsAndItsCloexecFormReopens) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    // Marks fd 7 close-on-exec: the flag must land on the real file, so 7 is reopened first.
    if (syscall(SYS_close_range, 7, 7, CLOSE_RANGE_CLOEXEC) != 0) return 1;
    WriteString(out, std::to_string(fcntl(7, F_GETFD)) + ",");
    if (syscall(SYS_close_range, 8, kOutFd - 1, 0) != 0) return 2;  // drops pending fd 9
    WriteString(out, std::to_string(fcntl(9, F_GETFD)) + ",");
    ReadTo(7, 2, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "1,-1,fg");
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0].fd, 7);
}

TEST_P(LazyReconnectTest, ThreadsShareOneReopen) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    char got[4] = {};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&got, i] {
        if (read(7, &got[i], 1) != 1) got[i] = '?';
      });
    }
    for (auto& t : threads) t.join();
    std::string s(got, 4);
    std::sort(s.begin(), s.end());
    WriteString(out, s);
    return 0;
  });
  ExpectClean(o);
  // One open file description for the whole process: four one-byte reads take four bytes.
  EXPECT_EQ(o.output, "fghi");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, OneCallNamingTwoPendingFdsReopensBoth) {
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_WRONLY, 2, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    WriteString(out, std::to_string(sendfile(9, 7, nullptr, 3)));
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "3");
  std::ifstream in(b);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "01fgh56789");
  EXPECT_EQ(o.events.size(), 2u);
}

TEST_P(LazyReconnectTest, AnExecedProgramInheritsAPendingFd) {
  const std::string a = MakeFile("a", kContent);
  // fd 9 is not close-on-exec: a program run by the process may read it, and gets the file.
  const std::vector<LazyFile> files = {{9, O_RDONLY, 3, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const pid_t child = fork();
    if (child == 0) {
      dup2(out, 1);
      execl("/bin/sh", "sh", "-c", "head -c 3 <&9", nullptr);
      _exit(127);
    }
    int status = 0;
    return waitpid(child, &status, 0) == child && status == 0 ? 0 : 1;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "def");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, ServesOnAfterTheEventsReaderIsGone) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  close_events_early_ = true;
  const Outcome o = RunRestored(files, [](int out) {
    ReadTo(7, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh");
}

TEST_P(LazyReconnectTest, WorksUnderTheSandboxPolicy) {
  // The restored process also runs under the sandbox's allowlist (installed after the lazy
  // filter, per thread, at the jump); the two stack.
  const auto program = sandbox::CompileSeccomp(sandbox::SeccompPolicy::kStrict);
  ASSERT_TRUE(program.has_value()) << program.error().message();
  const std::string a = MakeFile("a", kContent), b = MakeFile("b", "0123456789");
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 3, 0, b.c_str()}};
  const Outcome o = RunRestored(files, [&program](int out) {
    if (sandbox::InstallSeccomp(*program) != 0) return 1;
    ReadTo(7, 3, out);
    if (close(9) != 0) return 2;
    WriteString(out, syscall(SYS_kcmp, getpid(), getpid(), 0, 7, 7) == -1 ? "|denied" : "|kcmp");
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|denied");
  EXPECT_EQ(o.events.size(), 1u);
}

TEST_P(LazyReconnectTest, TheReconnectorConfinesItself) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [this](int out) {
    ReadTo(7, 1, out);  // served: the reconnector is in its loop
    std::ifstream status("/proc/" + std::to_string(reconnector_pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Seccomp:", 0) == 0) WriteString(out, "|" + line);
    }
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "f|Seccomp:\t2");
}

INSTANTIATE_TEST_SUITE_P(PlaceholderCheck, LazyReconnectTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Kcmp") : std::string("StateMachine");
                         });

// Only the kcmp check sees fd tables: a forked child that uses or closes a pending fd does not
// change what the parent's fd holds.
class LazyReconnectForkTest : public LazyReconnectTest {};

TEST_P(LazyReconnectForkTest, ParentAndForkedChildEachReopenOnFirstUse) {
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 2, 0, a.c_str()}};
  const Outcome o = RunRestored(files, [](int out) {
    const pid_t child = fork();
    if (child == 0) {
      ReadTo(7, 3, out);
      close(9);  // the child's copy only
      _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || status != 0) return 1;
    WriteString(out, "|");
    ReadTo(7, 3, out);
    ReadTo(9, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|fghcde");
  EXPECT_EQ(o.events.size(), 3u);
}

// As in a sandbox: both processes run as the same unprivileged uid, with no capability. kcmp
// then needs the restored process to be dumpable; without that, the reconnector falls back to
// the state machine and a process that does not fork is still served.
TEST_P(LazyReconnectForkTest, WorksAsAnUnprivilegedUser) {
  constexpr uid_t kNobody = 65534;
  run_as_ = kNobody;
  const std::string a = MakeFile("a", kContent);
  const std::vector<LazyFile> files = {{7, O_RDONLY, 5, 0, a.c_str()},
                                       {9, O_RDONLY, 2, 0, a.c_str()}};
  const auto body = [](int out) {
    if (geteuid() != kNobody) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(9);
      ReadTo(7, 3, out);
      _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || status != 0) return 2;
    WriteString(out, "|");
    ReadTo(9, 3, out);
    return 0;
  };
  Outcome o = RunRestored(files, body);
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh|cde") << "dumpable: kcmp sees the parent's fd 9 is still pending";

  dumpable_ = false;
  o = RunRestored(files, body);
  ExpectClean(o);
  // kcmp is refused; the state machine took the child's close(9) for the parent's too.
  EXPECT_EQ(o.output, "fgh|E" + std::to_string(EBADF));
  o = RunRestored(files, [](int out) {
    ReadTo(7, 3, out);
    return 0;
  });
  ExpectClean(o);
  EXPECT_EQ(o.output, "fgh") << "without kcmp a process that does not fork is still served";
}

INSTANTIATE_TEST_SUITE_P(PlaceholderCheck, LazyReconnectForkTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return std::string("Kcmp"); });

}  // namespace
}  // namespace ember::restorer
