// The fixture of the fork-boot e2e tests (fork_test.cc, fork_security_test.cc): a daemon in its
// own EmberEnv with the python3.11 image, the bundle/deploy/invoke helpers of daemon_test.cc, and
// a wait for a function's template to reach a state (templates are built in the background after
// deploy, so a test polls GET /v1/functions/NAME; the deadline is generous, nothing is timed).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "base/fs.h"
#include "util/daemon_fixture.h"
#include "util/fixtures.h"

namespace ember::testing {

class ForkFixture : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  void SetUp() override {
    EMBER_REQUIRE_PRIVILEGES();
    env_.emplace();
    env_->ImportPythonImage();
    daemon_ = std::make_unique<EmberDaemon>(*env_);
    ASSERT_EQ(daemon_->start_error(), "");
  }
  void TearDown() override {
    daemon_.reset();
    if (env_) {
      EXPECT_EQ(env_->Leaks(), "");
    }
  }

  // Writes a python function bundle: ember.toml with `extra` lines, handler.py with `code`.
  std::string PythonBundle(const std::string& name, const std::string& code,
                           const std::string& extra = "") {
    std::string dir = env_->root() + "/bundles/" + name;
    EXPECT_TRUE(MakeDirs(dir));
    EXPECT_TRUE(WriteFileAtomic(dir + "/ember.toml", "name = \"" + name +
                                                         "\"\nruntime = \"python3.11\"\n"
                                                         "handler = \"handler.handle\"\n" +
                                                         extra));
    EXPECT_TRUE(WriteFileAtomic(dir + "/handler.py", code));
    return dir;
  }

  void Deploy(const std::string& dir) {
    auto r = env_->Ember({"deploy", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err << "\ndaemon: " << daemon_->Output();
  }

  daemon::HttpResponse Invoke(const std::string& name, const std::string& event = "{}",
                              const std::string& query = "") {
    return daemon_->Request("POST", "/v1/functions/" + name + "/invoke" + query, event,
                            "application/json");
  }
  daemon::HttpResponse ForkInvoke(const std::string& name, const std::string& event = "{}") {
    return Invoke(name, event, "?boot=fork");
  }

  static json Body(const daemon::HttpResponse& r) {
    return json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  }
  static std::string Header(const daemon::HttpResponse& r, const std::string& name) {
    return r.Header(name).value_or("");
  }

  json Function(const std::string& name) {
    return Body(daemon_->Request("GET", "/v1/functions/" + name));
  }
  // By value: a range-for over a member of a temporary would dangle.
  json Instances() { return Body(daemon_->Request("GET", "/v1/instances"))["instances"]; }
  json Templates() { return Body(daemon_->Request("GET", "/v1/templates"))["templates"]; }

  // Polls GET /v1/functions/NAME until its template is in `state` for the function's current
  // version, and returns the template; null (and a failure) if it ends in another final state
  // or the deadline passes.
  json WaitForTemplate(const std::string& name, const std::string& state) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    json function;
    for (;;) {
      function = Function(name);
      const json& t = function.is_object() ? function["template"] : json();
      bool current = t.is_object() && t.value("version", "") == function.value("version", "");
      if (current && t.value("state", "") == state) return t;
      bool final = current && t.value("state", "") != "building";
      if (final || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the template of " << name << " is not " << state << ": " << function.dump()
                  << "\ndaemon: " << daemon_->Output();
    return nullptr;
  }

  std::optional<EmberEnv> env_;
  std::unique_ptr<EmberDaemon> daemon_;
};

}  // namespace ember::testing
