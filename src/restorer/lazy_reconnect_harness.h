// Test harness for on-demand I/O reconnection end to end (lazy_reconnector_test.cc,
// lazy_reconnector_process_test.cc): a forked "restored process" installs the lazy-file filter
// and hands the listener to a reconnector process; a test reads what the process saw and the
// reconnector's reports of every open it did. Parameter: true = the reconnector gets the
// placeholder (kcmp decides), false = it does not (the state machine decides).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "restorer/lazy_files.h"

namespace ember::restorer::lazy_test {

inline constexpr char kContent[] = "abcdefghijklmnopqrstuvwxyz";

// Where the restored process's own fds go, out of the way of the lazy numbers under test.
inline constexpr int kOutFd = 60;
inline constexpr int kSockFd = 61;

struct Outcome {
  int status = -1;              // the restored process's wait status
  int reconnector_status = -1;  // the reconnector's
  std::string output;           // what the restored process wrote to its out fd
  std::vector<ReconnectEvent> events;
};

// The restored process's body: runs with the filter installed; writes what it saw to `out`;
// returns its exit code.
using Body = std::function<int(int out)>;

inline void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n <= 0) _exit(90);
    p += n;
    size -= static_cast<size_t>(n);
  }
}
inline void WriteString(int fd, const std::string& s) { WriteAll(fd, s.data(), s.size()); }

inline std::string ReadAll(int fd) {
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
    dir_ = std::filesystem::temp_directory_path() /
           ("ember-lazy-" + std::to_string(getpid()) + "-" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

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
inline void ReadTo(int fd, size_t n, int out) {
  std::string buf(n, '\0');
  const ssize_t r = read(fd, buf.data(), n);
  WriteString(out, r < 0 ? "E" + std::to_string(errno) : buf.substr(0, static_cast<size_t>(r)));
}

}  // namespace ember::restorer::lazy_test
