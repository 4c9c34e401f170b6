#include "util/daemon_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/fs.h"

namespace ember::testing {

EmberDaemon::EmberDaemon(const EmberEnv& env, std::vector<std::string> extra_args) : env_(env) {
  log_path_ = env.root() + "/daemon.log";
  std::vector<std::string> argv = {EmberBinary(), "--data-dir",  env.data_dir(), "--run-dir",
                                   env.run_dir(), "--log-level", "info",         "daemon"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::setenv("EMBER_CGROUP_NAME", env.cgroup_name().c_str(), 1);
    ::setenv("EMBER_IMAGE_LINGER", "0", 1);
    ::unsetenv("EMBER_SOCKET");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  daemon::HttpClient client(socket());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto health = client.Request("GET", "/v1/healthz", {}, {}, {}, std::chrono::seconds(5));
    if (health && health->status == 200) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      start_error_ = "the daemon exited during start-up: " + Output();
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      start_error_ = "the daemon did not answer within 60s: " + Output();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

EmberDaemon::~EmberDaemon() {
  if (pid_ > 0) {
    int code = Stop(SIGTERM, 60);
    EXPECT_EQ(code, 0) << "ember daemon did not stop cleanly: " << Output();
  }
}

std::string EmberDaemon::Output() const {
  auto text = ReadFile(log_path_);
  return text ? *text : "";
}

daemon::HttpResponse EmberDaemon::Request(const std::string& method, const std::string& target,
                                          const std::string& body, const std::string& content_type,
                                          int timeout_s) const {
  daemon::HttpClient client(socket());
  auto response =
      client.Request(method, target, body, content_type, {}, std::chrono::seconds(timeout_s));
  EXPECT_TRUE(response) << method << " " << target << ": " << response.error().ToString();
  if (!response) return daemon::HttpResponse{0, "", {}, ""};
  return *response;
}

int EmberDaemon::Stop(int sig, int timeout_s) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace ember::testing
