// `ember image build` against the real Debian mirror. The python3.11 image is built once for the
// suite (about a minute); failures must leave the data dir empty.
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include "base/fs.h"
#include "util/fixtures.h"

namespace ember {
namespace {

using ember::testing::EmberEnv;
using ember::testing::RunCommand;

bool NothingStored(const EmberEnv& env, std::string* what) {
  for (const char* sub : {"/images", "/refs", "/tmp"}) {
    auto entries = ListDirectory(env.data_dir() + sub);
    if (entries && !entries->empty()) {
      *what = std::string(sub) + " holds " + (*entries)[0];
      return false;
    }
  }
  return true;
}

class ImageBuild : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new EmberEnv();
    result_ = new ember::testing::RunResult(env_->Ember({"image", "build", "python3.11"}, "", 900));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete env_;
  }
  static EmberEnv* env_;
  static ember::testing::RunResult* result_;
};
EmberEnv* ImageBuild::env_ = nullptr;
ember::testing::RunResult* ImageBuild::result_ = nullptr;

TEST_F(ImageBuild, Python311HasTheInterpreterAndLibpython) {
  EMBER_REQUIRE_PRIVILEGES();
  ASSERT_EQ(result_->exit_code, 0) << result_->err;
  for (const char* phase : {"resolving", "downloading and installing", "packing", "storing"}) {
    EXPECT_NE(result_->err.find(phase), std::string::npos) << "no '" << phase << "' progress line";
  }
  std::string digest = result_->out.substr(0, result_->out.find('\n'));
  ASSERT_EQ(digest.size(), 32u) << result_->out;
  std::string blob = env_->data_dir() + "/images/" + digest + ".erofs";
  struct utsname u {};
  ::uname(&u);
  std::string libdir = std::string("/usr/lib/") + u.machine + "-linux-gnu";
  for (const std::string& path :
       {std::string("/usr/bin/python3.11"), std::string("/usr/bin/python3"),
        libdir + "/libpython3.11.so.1.0"}) {
    auto dump = RunCommand({"dump.erofs", "--path=" + path, blob});
    EXPECT_EQ(dump.exit_code, 0) << path << " missing from the image: " << dump.err << dump.out;
  }
  auto inspect = env_->Ember({"image", "inspect", "python3.11"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("\"recipe\": \"python3.11\""), std::string::npos) << inspect.out;
  auto tmp = ListDirectory(env_->data_dir() + "/tmp");
  ASSERT_TRUE(tmp);
  EXPECT_TRUE(tmp->empty()) << "staging left behind";
  EXPECT_EQ(env_->Leaks(), "");
}

TEST(ImageBuildFailure, UnknownRecipeListsKnownOnesAndStoresNothing) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  auto r = env.Ember({"image", "build", "python2.7"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("unknown image recipe 'python2.7' (known recipes: python3.11)"),
            std::string::npos)
      << r.err;
  std::string what;
  EXPECT_TRUE(NothingStored(env, &what)) << what;
}

TEST(ImageBuildFailure, FailingMmdebstrapLeavesNothingBehind) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  auto r = env.Ember(
      {"image", "build", "python3.11", "--name", "broken", "--include", "ember-no-such-package"},
      "", 600);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("mmdebstrap"), std::string::npos) << r.err;
  std::string what;
  EXPECT_TRUE(NothingStored(env, &what)) << what;
  EXPECT_EQ(env.Leaks(), "");
}

TEST(ImageBuildFailure, BadNameIsRefusedBeforeAnyWork) {
  EMBER_REQUIRE_PRIVILEGES();
  EmberEnv env;
  auto r = env.Ember({"image", "build", "python3.11", "--name", "Bad/Name"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("[a-z0-9][a-z0-9._-]{0,127}"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ember
