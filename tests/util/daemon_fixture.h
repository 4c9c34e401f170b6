// A real `ember daemon` for e2e tests, in an EmberEnv of its own (data dir, run dir, socket,
// cgroup name): started in the constructor, stopped with SIGTERM in the destructor (SIGKILL if
// it does not stop), with its stderr kept in a file for failure messages.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "daemon/http_client.h"
#include "util/fixtures.h"

namespace ember::testing {

class EmberDaemon {
 public:
  explicit EmberDaemon(const EmberEnv& env, std::vector<std::string> extra_args = {});
  ~EmberDaemon();
  EmberDaemon(const EmberDaemon&) = delete;
  EmberDaemon& operator=(const EmberDaemon&) = delete;

  // Empty when the daemon answered /v1/healthz; otherwise why it did not.
  const std::string& start_error() const { return start_error_; }
  std::string socket() const { return env_.run_dir() + "/ember.sock"; }
  pid_t pid() const { return pid_; }
  // What the daemon printed so far.
  std::string Output() const;

  // One request on a fresh connection; a transport failure fails the test and returns status 0.
  daemon::HttpResponse Request(const std::string& method, const std::string& target,
                               const std::string& body = "", const std::string& content_type = "",
                               int timeout_s = 120) const;

  // Sends `sig` and waits for the daemon to exit; returns its exit code (128+N if killed by N),
  // or -1 if it did not exit within `timeout_s` (it is then killed).
  int Stop(int sig = SIGTERM, int timeout_s = 60);

 private:
  const EmberEnv& env_;
  pid_t pid_ = -1;
  std::string log_path_;
  std::string start_error_;
};

}  // namespace ember::testing
