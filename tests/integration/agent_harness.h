// A harness for ember-agent on the host, without a sandbox: the test plays the daemon on fd 3
// (one end of a socketpair) and reads the agent's stdout and stderr through pipes. Needs no
// privileges; python functions use the host's python3.11 and libpython3.11 in /usr, as the image
// does. Used by agent_test.cc (python) and agent_runtimes_test.cc (native, process, protocol).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "agent/protocol.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "util/fixtures.h"

namespace ember::agent::testing {

using Json = nlohmann::json;

inline constexpr int kTimeoutMs = 20000;  // only a hung agent comes near this

inline std::string AgentBinary() { return std::string(EMBER_BIN_DIR) + "/ember-agent"; }

// One ember-agent process, with the test as its daemon.
class AgentProcess {
 public:
  explicit AgentProcess(const std::map<std::string, std::string>& env = {}) {
    int sock[2], out[2], err[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) != 0 ||
        ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "socketpair/pipe2 failed";
      return;
    }
    control_.reset(sock[0]);
    UniqueFd agent_end(sock[1]);
    stdout_.reset(out[0]);
    stderr_.reset(err[0]);
    UniqueFd out_write(out[1]), err_write(err[1]);
    std::string binary = AgentBinary();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Move everything above 3 first, so no dup2 below overwrites a source still needed.
      int s = ::fcntl(agent_end.get(), F_DUPFD, 10);
      int o = ::fcntl(out_write.get(), F_DUPFD, 10);
      int e = ::fcntl(err_write.get(), F_DUPFD, 10);
      ::dup2(s, 3);
      ::dup2(o, STDOUT_FILENO);
      ::dup2(e, STDERR_FILENO);
      for (const auto& [key, value] : env) ::setenv(key.c_str(), value.c_str(), 1);
      ::execl(binary.c_str(), binary.c_str(), nullptr);
      ::_exit(127);
    }
    EXPECT_GT(pid_, 0);
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  ~AgentProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void Send(FrameType type, uint64_t id, std::string_view payload) {
    auto sent = WriteFrame(control_.get(), type, id, payload);
    ASSERT_TRUE(sent) << sent.error().ToString();
  }
  void SendRaw(std::string_view bytes) {
    ASSERT_EQ(::send(control_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              ssize_t(bytes.size()));
  }
  void Init(const InitRequest& init) { Send(FrameType::kInit, 1, EncodeInit(init)); }
  void Invoke(uint64_t id, const std::string& event, uint64_t timeout_ms = 5000) {
    Send(FrameType::kInvoke, id,
         EncodeInvoke(InvokeRequest{"req-" + std::to_string(id), timeout_ms, event}));
  }

  // The next frame from the agent; fails the test if none comes.
  Frame Read() {
    struct pollfd pfd {
      control_.get(), POLLIN, 0
    };
    if (::poll(&pfd, 1, kTimeoutMs) != 1) {
      ADD_FAILURE() << "no frame from the agent within " << kTimeoutMs << " ms";
      return Frame{FrameType::kError, 0, ""};
    }
    auto frame = ReadFrame(control_.get());
    if (!frame) {
      ADD_FAILURE() << "read a frame: " << frame.error().ToString() << "\nstderr: " << Stderr();
      return Frame{FrameType::kError, 0, ""};
    }
    return std::move(*frame);
  }
  Json ReadResult() {
    Frame frame = Read();
    EXPECT_EQ(frame.type, FrameType::kResult) << frame.payload;
    Json value = Json::parse(frame.payload, nullptr, false);
    EXPECT_FALSE(value.is_discarded()) << frame.payload;
    return value;
  }
  ErrorInfo ReadError(FrameType expected) {
    Frame frame = Read();
    EXPECT_EQ(frame.type, expected) << frame.payload;
    auto error = DecodeError(frame.payload);
    EXPECT_TRUE(error) << frame.payload;
    return error ? *error : ErrorInfo{};
  }
  void ExpectReady() {
    Frame frame = Read();
    ASSERT_EQ(frame.type, FrameType::kReady) << frame.payload << "\nstderr: " << Stderr();
    Json ready = Json::parse(frame.payload, nullptr, false);
    ASSERT_TRUE(ready.is_object()) << frame.payload;
    EXPECT_TRUE(ready["init_us"].is_number_unsigned()) << frame.payload;
  }

  // Closes the daemon's end (the agent sees EOF) and returns the exit code.
  int CloseAndWait() {
    control_.reset();
    return Wait();
  }
  int Wait() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the agent did not exit";
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Reads the agent's stdout until it contains `text` (or a timeout), while the agent runs.
  std::string StdoutUntil(const std::string& text) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    while (out_.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      struct pollfd pfd {
        stdout_.get(), POLLIN, 0
      };
      if (::poll(&pfd, 1, 100) == 1) {
        char buf[4096];
        ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
        if (n <= 0) break;
        out_.append(buf, static_cast<size_t>(n));
      }
    }
    return out_;
  }
  // All of stderr; call after the agent exited.
  std::string Stderr() {
    if (!exited_) return "(agent still running)";
    std::string err;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stderr_.get(), buf, sizeof buf)) > 0) err.append(buf, size_t(n));
    return err;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  UniqueFd control_, stdout_, stderr_;
  std::string out_;
};

class AgentTest : public ::testing::Test {
 protected:
  void WriteCode(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomic(code_dir() + "/" + name, text, 0755));
  }
  const std::string& code_dir() const { return tmp_.path(); }
  InitRequest Init(const std::string& runtime, const std::string& handler,
                   uint32_t concurrency = 1) const {
    InitRequest init;
    init.function = "fn-under-test";
    init.runtime = runtime;
    init.handler = handler;
    init.code_dir = code_dir();
    init.memory_limit_bytes = 64u << 20;
    init.concurrency = concurrency;
    return init;
  }

  ember::testing::TempDir tmp_;
};

}  // namespace ember::agent::testing
