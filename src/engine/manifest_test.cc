#include "engine/manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace ember::engine {
namespace {

constexpr const char* kMinimal =
    "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"handler.handle\"\n";

Result<Manifest> ParseWith(const std::string& extra) {
  return ParseManifest(std::string(kMinimal) + extra);
}

// Expects `extra` (added to a valid manifest) to be refused with a message containing `expected`.
void ExpectError(const std::string& extra, const std::string& expected) {
  auto m = ParseWith(extra);
  ASSERT_FALSE(m) << "accepted: " << extra;
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(m.error().message().find(expected), std::string::npos)
      << "message: " << m.error().message() << "\nexpected: " << expected;
}

TEST(ManifestTest, MinimalManifestGetsTheDefaults) {
  auto m = ParseManifest(kMinimal);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->name, "hello");
  EXPECT_EQ(m->runtime, Runtime::kPython311);
  EXPECT_EQ(m->handler, "handler.handle");
  EXPECT_EQ(m->image, "python3.11");
  EXPECT_EQ(m->memory_bytes, 128ULL << 20);
  EXPECT_EQ(m->cpus, 1.0);
  EXPECT_EQ(m->pids, 64u);
  EXPECT_EQ(m->timeout.count(), 3000);
  EXPECT_TRUE(m->env.empty());
  EXPECT_EQ(m->network, sandbox::NetworkMode::kLoopback);
  EXPECT_EQ(m->concurrency, 1u);
  EXPECT_EQ(m->keep_alive.count(), 60000);
  EXPECT_EQ(m->max_instances, 10u);
  EXPECT_FALSE(m->warmup);
  EXPECT_EQ(m->template_policy, TemplatePolicy::kOnDeploy);
  EXPECT_EQ(m->snapshot_policy, SnapshotPolicy::kNone);
}

TEST(ManifestTest, SnapshotPolicy) {
  for (auto [text, policy] :
       {std::pair{"deploy", SnapshotPolicy::kOnDeploy}, std::pair{"none", SnapshotPolicy::kNone}}) {
    auto m = ParseManifest(std::string(kMinimal) + "snapshot = \"" + text + "\"\n");
    ASSERT_TRUE(m) << m.error().ToString();
    EXPECT_EQ(m->snapshot_policy, policy);
    auto back = ManifestFromJson(ManifestToJson(*m));
    ASSERT_TRUE(back) << back.error().ToString();
    EXPECT_EQ(back->snapshot_policy, policy);
  }
  auto bad = ParseManifest(std::string(kMinimal) + "snapshot = \"always\"\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("snapshot = \"always\""), std::string::npos)
      << bad.error().message();
}

TEST(ManifestTest, TemplatePolicy) {
  for (auto [text, policy] : {std::pair{"deploy", TemplatePolicy::kOnDeploy},
                              std::pair{"first-invoke", TemplatePolicy::kOnFirstInvoke},
                              std::pair{"none", TemplatePolicy::kNone}}) {
    auto m = ParseManifest(std::string(kMinimal) + "template = \"" + text + "\"\n");
    ASSERT_TRUE(m) << m.error().ToString();
    EXPECT_EQ(m->template_policy, policy);
    auto back = ManifestFromJson(ManifestToJson(*m));
    ASSERT_TRUE(back) << back.error().ToString();
    EXPECT_EQ(back->template_policy, policy);
  }
  auto bad = ParseManifest(std::string(kMinimal) + "template = \"always\"\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("template = \"always\""), std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find("first-invoke"), std::string::npos);
}

TEST(ManifestTest, ParsesEveryField) {
  auto m = ParseManifest(R"(
name = "img-resize_2"
runtime = "native"
handler = "lib/libresize.so:handle_request"
image = "debian-12.slim"
memory = "256MiB"
cpus = 0.5
pids = 128
timeout = "500ms"
network = "none"
concurrency = 4
keep_alive = "0s"
max_instances = 1000
env = { GREETING = "hi", _X1 = "" }
[warmup]
name = "warm"
sizes = [1, 2.5, true]
)");
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->runtime, Runtime::kNative);
  EXPECT_EQ(m->handler, "lib/libresize.so:handle_request");
  EXPECT_EQ(m->image, "debian-12.slim");
  EXPECT_EQ(m->memory_bytes, 256ULL << 20);
  EXPECT_EQ(m->cpus, 0.5);
  EXPECT_EQ(m->pids, 128u);
  EXPECT_EQ(m->timeout.count(), 500);
  EXPECT_EQ(m->network, sandbox::NetworkMode::kNone);
  EXPECT_EQ(m->concurrency, 4u);
  EXPECT_EQ(m->keep_alive.count(), 0);
  EXPECT_EQ(m->max_instances, 1000u);
  EXPECT_EQ(m->env.at("GREETING"), "hi");
  EXPECT_EQ(m->env.at("_X1"), "");
  ASSERT_TRUE(m->warmup);
  EXPECT_EQ(*m->warmup, R"({"name":"warm","sizes":[1,2.5,true]})");
}

TEST(ManifestTest, NumbersForSizesAndDurations) {
  auto m = ParseWith("memory = 33554432\ntimeout = 30\nkeep_alive = 0\ncpus = 2\n");
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->memory_bytes, 32ULL << 20);
  EXPECT_EQ(m->timeout.count(), 30000);
  EXPECT_EQ(m->keep_alive.count(), 0);
  EXPECT_EQ(m->cpus, 2.0);
  m = ParseWith("memory = \"1G\"\ntimeout = \"15m\"\nkeep_alive = \"24h\"\n");
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->memory_bytes, 1ULL << 30);
  EXPECT_EQ(m->timeout.count(), 15 * 60 * 1000);
  EXPECT_EQ(m->keep_alive.count(), 24 * 3600 * 1000);
}

TEST(ManifestTest, WarmupForms) {
  auto m = ParseWith("warmup = '{\"name\": \"x\", \"n\": [1, 2]}'\n");
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(*m->warmup, R"({"name":"x","n":[1,2]})");
  m = ParseWith("warmup = '\"ping\"'\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->warmup, R"("ping")");
  m = ParseWith("warmup = 42\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->warmup, "42");
  m = ParseWith("warmup = [ { a = 1 }, \"b\" ]\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->warmup, R"([{"a":1},"b"])");
  m = ParseWith("[warmup]\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->warmup, "{}");
  ExpectError("warmup = \"ping\"\n", "warmup = \"ping\": not JSON text");
  ExpectError("warmup = nan\n", "JSON has no inf or nan");
}

TEST(ManifestTest, TheExampleErrorFromTheDocs) {
  auto m = ParseWith("memory = \"12XB\"\n");
  ASSERT_FALSE(m);
  EXPECT_EQ(
      m.error().message(),
      "ember.toml: memory = \"12XB\": not a size (use e.g. 128MiB, 1G, or a number of bytes)");
}

TEST(ManifestTest, SyntaxErrorsGiveLineAndColumn) {
  auto m = ParseManifest("name = \"x\"\nruntime = \n", "fn/ember.toml");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message().rfind("fn/ember.toml:2:", 0), 0u) << m.error().message();
  m = ParseManifest("name = \"x\"\nname = \"y\"\n");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message().rfind("ember.toml:2:", 0), 0u) << m.error().message();
}

TEST(ManifestTest, UnknownKeysAreNamedWithASuggestion) {
  ExpectError("memroy = \"1G\"\n", "unknown key 'memroy' (did you mean 'memory'?)");
  ExpectError("[limits]\nmemory = 1\n", "unknown key 'limits'; known keys: name, runtime");
}

TEST(ManifestTest, RequiredFields) {
  auto m = ParseManifest("runtime = \"python3.11\"\nhandler = \"a.b\"\n");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("the required field 'name' is missing"), std::string::npos);
  m = ParseManifest("name = \"a\"\nhandler = \"a.b\"\n");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("'runtime' is missing"), std::string::npos);
  m = ParseManifest("name = \"a\"\nruntime = \"native\"\n");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("'handler' is missing"), std::string::npos);
}

TEST(ManifestTest, NameErrors) {
  for (const char* bad : {"Hello", "-x", "a b", "", "a.b", "ä"}) {
    auto m = ParseManifest(std::string("name = \"") + bad +
                           "\"\nruntime = \"process\"\nhandler = \"x\"\n");
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message().find("name = \""), std::string::npos) << m.error().message();
    EXPECT_NE(m.error().message().find("[a-z0-9][a-z0-9_-]{0,62}"), std::string::npos);
  }
  std::string long_name(64, 'a');
  EXPECT_FALSE(
      ParseManifest("name = \"" + long_name + "\"\nruntime = \"process\"\nhandler = \"x\""));
  EXPECT_TRUE(ParseManifest("name = \"" + long_name.substr(1) +
                            "\"\nruntime = \"process\"\nhandler = \"x\""));
  EXPECT_FALSE(ParseManifest("name = 5\nruntime = \"process\"\nhandler = \"x\""));
}

Result<Manifest> WithHandler(const std::string& runtime, const std::string& handler) {
  return ParseManifest("name = \"f\"\nruntime = \"" + runtime + "\"\nhandler = \"" + handler +
                       "\"\n");
}

TEST(ManifestTest, RuntimeErrors) {
  auto m = WithHandler("python3", "a.b");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find(
                "runtime = \"python3\": must be \"python3.11\", \"native\" or \"process\""),
            std::string::npos)
      << m.error().message();
}

TEST(ManifestTest, HandlerRulesPerRuntime) {
  EXPECT_TRUE(WithHandler("python3.11", "handler.handle"));
  EXPECT_TRUE(WithHandler("python3.11", "pkg.sub.mod.run_1"));
  for (const char* bad : {"handler", "handler.", ".handle", "a..b", "1a.b", "a-b.c", "a.b c"}) {
    auto m = WithHandler("python3.11", bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message().find("module.function"), std::string::npos);
  }
  EXPECT_TRUE(WithHandler("native", "libhello.so:handle"));
  EXPECT_TRUE(WithHandler("native", "./build/libx.so:_x9"));
  for (const char* bad : {"libhello.so", ":handle", "libhello.so:", "lib.so:1x", "/lib/x.so:f",
                          "../x.so:f", "a/../../x.so:f", "dir/:f"}) {
    EXPECT_FALSE(WithHandler("native", bad)) << bad;
  }
  EXPECT_TRUE(WithHandler("process", "./handler.sh --flag"));
  EXPECT_TRUE(WithHandler("process", "python3 -u app.py"));
  EXPECT_FALSE(WithHandler("process", "   "));
  EXPECT_FALSE(WithHandler("process", "a\\nb"));
}

TEST(ManifestTest, ImageErrors) {
  ExpectError("image = \"Python\"\n", "image = \"Python\": not an image name");
  ExpectError("image = 3\n", "image = 3: expected a string");
}

TEST(ManifestTest, MemoryErrors) {
  ExpectError("memory = \"8MiB\"\n", "memory = \"8MiB\": must be at least 16MiB");
  ExpectError("memory = 1000\n", "memory = 1000: must be at least 16MiB");
  ExpectError("memory = -5\n", "memory = -5: not a size");
  ExpectError("memory = \"lots\"\n", "memory = \"lots\": not a size");
  ExpectError("memory = 1.5\n", "memory = 1.5: not a size");
}

TEST(ManifestTest, CpusErrors) {
  ExpectError("cpus = 0\n", "cpus = 0: must be a number of CPUs from 0.01 to 64");
  ExpectError("cpus = 65\n", "cpus = 65: must be");
  ExpectError("cpus = -1.0\n", "cpus = -1.0: must be");
  ExpectError("cpus = \"2\"\n", "cpus = \"2\": must be");
  ExpectError("cpus = inf\n", "cpus = inf: must be");
}

TEST(ManifestTest, PidsErrors) {
  EXPECT_TRUE(ParseWith("pids = 8\n"));
  EXPECT_TRUE(ParseWith("pids = 65536\n"));
  ExpectError("pids = 7\n", "pids = 7: must be a whole number from 8 to 65536");
  ExpectError("pids = 65537\n", "pids = 65537: must be a whole number from 8 to 65536");
  ExpectError("pids = \"64\"\n", "pids = \"64\": must be a whole number");
}

TEST(ManifestTest, TimeoutErrors) {
  EXPECT_TRUE(ParseWith("timeout = \"1ms\"\n"));
  EXPECT_TRUE(ParseWith("timeout = 0.25\n"));
  ExpectError("timeout = \"16m\"\n", "timeout = \"16m\": must be from 1ms to 15m");
  ExpectError("timeout = 0\n", "timeout = 0: must be from 1ms to 15m");
  ExpectError("timeout = \"0s\"\n", "timeout = \"0s\": not a duration");
  ExpectError("timeout = \"3 sec\"\n", "timeout = \"3 sec\": not a duration");
  ExpectError("timeout = true\n", "timeout = true: not a duration");
}

TEST(ManifestTest, KeepAliveErrors) {
  EXPECT_EQ(ParseWith("keep_alive = \"0ms\"\n")->keep_alive.count(), 0);
  EXPECT_EQ(ParseWith("keep_alive = \"10m\"\n")->keep_alive.count(), 600000);
  ExpectError("keep_alive = \"25h\"\n", "keep_alive = \"25h\": must be from 0s to 24h");
  ExpectError("keep_alive = -1\n", "keep_alive = -1: must be from 0s to 24h");
  ExpectError("keep_alive = \"soon\"\n", "keep_alive = \"soon\": not a duration");
}

TEST(ManifestTest, EnvErrors) {
  ExpectError("env = { EMBER_FUNCTION = \"x\" }\n",
              "env.EMBER_FUNCTION = \"x\": EMBER_* variables are reserved");
  ExpectError("env = { \"A=B\" = \"x\" }\n", "not an environment variable name");
  ExpectError("env = { \"1A\" = \"x\" }\n", "not an environment variable name");
  ExpectError("env = { \"\" = \"x\" }\n", "not an environment variable name");
  ExpectError("env = { A = 1 }\n", "env.A = 1: values are strings");
  ExpectError("env = { A = \"a\\u0000b\" }\n", "NUL byte");
  ExpectError("env = \"A=1\"\n", "env = \"A=1\": expected a table of strings");
}

TEST(ManifestTest, NetworkConcurrencyAndInstancesErrors) {
  ExpectError("network = \"host\"\n", "network = \"host\": must be \"none\"");
  ExpectError("concurrency = 0\n", "concurrency = 0: must be a whole number from 1 to 64");
  ExpectError("concurrency = 65\n", "concurrency = 65: must be a whole number from 1 to 64");
  ExpectError("max_instances = 0\n", "max_instances = 0: must be a whole number from 1 to 100000");
  ExpectError("max_instances = 100001\n", "must be a whole number from 1 to 100000");
}

TEST(ManifestTest, JsonRoundTripsExactly) {
  auto m = ParseManifest(R"(
name = "rt"
runtime = "process"
handler = "./run.sh \"quoted arg\""
image = "busybox"
memory = "100000000"
cpus = 0.1
pids = 9
timeout = 1.5
network = "none"
concurrency = 3
keep_alive = "90s"
max_instances = 7
env = { B = "two words", A = "é" }
warmup = '{"z": 1, "a": [null, 0.1]}'
)");
  ASSERT_TRUE(m) << m.error().ToString();
  std::string json = ManifestToJson(*m);
  auto back = ManifestFromJson(json);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(ManifestToJson(*back), json);
  EXPECT_EQ(back->name, m->name);
  EXPECT_EQ(back->runtime, m->runtime);
  EXPECT_EQ(back->handler, m->handler);
  EXPECT_EQ(back->image, m->image);
  EXPECT_EQ(back->memory_bytes, m->memory_bytes);
  EXPECT_EQ(back->cpus, m->cpus);  // exact, not approximately
  EXPECT_EQ(back->pids, m->pids);
  EXPECT_EQ(back->timeout, m->timeout);
  EXPECT_EQ(back->env, m->env);
  EXPECT_EQ(back->network, m->network);
  EXPECT_EQ(back->concurrency, m->concurrency);
  EXPECT_EQ(back->keep_alive, m->keep_alive);
  EXPECT_EQ(back->max_instances, m->max_instances);
  EXPECT_EQ(back->warmup, m->warmup);
  EXPECT_EQ(*back->warmup, R"({"z":1,"a":[null,0.1]})");

  auto defaults = ParseManifest(kMinimal);
  auto defaults_back = ManifestFromJson(ManifestToJson(*defaults));
  ASSERT_TRUE(defaults_back);
  EXPECT_FALSE(defaults_back->warmup);
  EXPECT_EQ(ManifestToJson(*defaults_back), ManifestToJson(*defaults));
}

TEST(ManifestTest, DamagedJsonIsCorrupt) {
  std::string good = ManifestToJson(*ParseManifest(kMinimal));
  for (const std::string& bad : {std::string("{"), std::string("[]"),
                                 std::string("{\"format\": 1}"), good.substr(0, good.size() / 2)}) {
    auto m = ManifestFromJson(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt);
  }
  std::string wrong_type = good;
  wrong_type.replace(wrong_type.find("\"pids\":64"), 9, "\"pids\":\"64\"");
  EXPECT_FALSE(ManifestFromJson(wrong_type));
  std::string out_of_range = good;
  out_of_range.replace(out_of_range.find("\"pids\":64"), 9, "\"pids\":2");
  auto m = ManifestFromJson(out_of_range);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(m.error().message().find("pids = 2"), std::string::npos) << m.error().message();
  std::string future = good;
  future.replace(future.find("\"format\":1"), 10, "\"format\":2");
  EXPECT_FALSE(ManifestFromJson(future));
}

class BundleManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-bundle-XXXXXX";
    dir_ = ::mkdtemp(templ);
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  void Write(const std::string& rel, const std::string& content, mode_t mode = 0644) {
    auto slash = rel.rfind('/');
    if (slash != std::string::npos) {
      ASSERT_TRUE(MakeDirs(dir_ + "/" + rel.substr(0, slash)));
    }
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/" + rel, content, mode));
  }
  void Manifest(const std::string& runtime, const std::string& handler) {
    Write("ember.toml",
          "name = \"f\"\nruntime = \"" + runtime + "\"\nhandler = '" + handler + "'\n");
  }
  std::string ErrorOf() {
    auto m = LoadBundleManifest(dir_);
    return m ? "" : m.error().message();
  }

  std::string dir_;
};

TEST_F(BundleManifestTest, MissingManifestOrDirectory) {
  EXPECT_EQ(ErrorOf(), "no ember.toml in " + dir_);
  auto m = LoadBundleManifest(dir_ + "/nope");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("is not a directory"), std::string::npos);
}

TEST_F(BundleManifestTest, ManifestMustBeARegularFileInTheBundle) {
  Write("real.toml", "name = \"f\"\nruntime = \"process\"\nhandler = \"true\"\n");
  ASSERT_EQ(::symlink("real.toml", (dir_ + "/ember.toml").c_str()), 0);
  EXPECT_EQ(ErrorOf(), "ember.toml in " + dir_ + " is a symlink; it must be a regular file");
}

TEST_F(BundleManifestTest, PythonModuleOrPackage) {
  Manifest("python3.11", "handler.handle");
  EXPECT_EQ(ErrorOf(),
            "handler module 'handler' not found in the bundle (looked for handler.py and "
            "handler/__init__.py)");
  Write("handler.py", "def handle(e, c): return 1\n");
  EXPECT_EQ(ErrorOf(), "");
  Manifest("python3.11", "pkg.sub.handle");
  EXPECT_NE(ErrorOf().find("looked for pkg/sub.py and pkg/sub/__init__.py"), std::string::npos);
  Write("pkg/sub/__init__.py", "");
  EXPECT_EQ(ErrorOf(), "");
}

TEST_F(BundleManifestTest, SymlinksAreFollowedOnlyInsideTheBundle) {
  Manifest("python3.11", "handler.handle");
  Write("src/real.py", "");
  ASSERT_EQ(::symlink("src/real.py", (dir_ + "/handler.py").c_str()), 0);
  EXPECT_EQ(ErrorOf(), "");
  ASSERT_EQ(::unlink((dir_ + "/handler.py").c_str()), 0);
  // A host file outside the bundle is never found through a link, relative or absolute.
  Write("../outside-" + std::to_string(::getpid()) + ".py", "");
  ASSERT_EQ(::symlink(("../outside-" + std::to_string(::getpid()) + ".py").c_str(),
                      (dir_ + "/handler.py").c_str()),
            0);
  EXPECT_NE(ErrorOf().find("not found in the bundle"), std::string::npos);
  ::unlink((dir_ + "/../outside-" + std::to_string(::getpid()) + ".py").c_str());
  Manifest("native", "lib.so:f");
  ASSERT_EQ(::symlink("/usr/lib/x86_64-linux-gnu/libc.so.6", (dir_ + "/lib.so").c_str()), 0);
  EXPECT_NE(ErrorOf().find("symlink that leads outside the bundle"), std::string::npos)
      << ErrorOf();
}

TEST_F(BundleManifestTest, NativeLibrary) {
  Manifest("native", "build/libhello.so:handle");
  EXPECT_NE(ErrorOf().find("handler library 'build/libhello.so' not found"), std::string::npos);
  Write("build/libhello.so", "ELF");
  EXPECT_EQ(ErrorOf(), "");
}

TEST_F(BundleManifestTest, ProcessCommandsOnlyCheckedWhenARelativePath) {
  Manifest("process", "sh -c \"echo hi\"");
  EXPECT_EQ(ErrorOf(), "");
  Manifest("process", "/bin/cat");
  EXPECT_EQ(ErrorOf(), "");
  Manifest("process", "./run.sh arg");
  EXPECT_NE(ErrorOf().find("handler command './run.sh' not found"), std::string::npos);
  Write("run.sh", "#!/bin/sh\n", 0644);
  EXPECT_NE(ErrorOf().find("is not executable (chmod +x ./run.sh"), std::string::npos);
  ASSERT_EQ(::chmod((dir_ + "/run.sh").c_str(), 0755), 0);
  EXPECT_EQ(ErrorOf(), "");
}

}  // namespace
}  // namespace ember::engine

namespace ember::engine {
namespace {

// The examples a new user deploys first must stay valid bundles.
TEST(ExampleBundlesTest, ExamplesAreValid) {
  std::string file = __FILE__;
  std::string examples = file.substr(0, file.rfind("/src/engine/")) + "/examples";
  for (const char* name : {"hello-python", "json-transform", "process-shell"}) {
    auto m = LoadBundleManifest(examples + "/" + name);
    ASSERT_TRUE(m) << name << ": " << m.error().ToString();
    EXPECT_EQ(m->name, name);
  }
  // native-c's library is built by `make`, so only its manifest is checked here.
  auto text = ReadFile(examples + "/native-c/ember.toml");
  ASSERT_TRUE(text);
  auto native = ParseManifest(*text);
  ASSERT_TRUE(native) << native.error().ToString();
  EXPECT_EQ(native->handler, "libhello.so:handle");
  EXPECT_EQ(native->env.at("SALUTATION"), "Hello");
  auto warm = LoadBundleManifest(examples + "/json-transform");
  EXPECT_EQ(warm->warmup, std::optional<std::string>(R"({"records":[]})"));
}

}  // namespace
}  // namespace ember::engine
