#include "engine/function_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "image/test_tar.h"

namespace ember::engine {
namespace {

using image::testing::TarWriter;

constexpr const char* kToml =
    "name = \"hello\"\nruntime = \"python3.11\"\nhandler = \"handler.handle\"\n";
constexpr const char* kHandler = "def handle(event, context):\n    return 'hi'\n";

class FunctionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/ember-fnstore-XXXXXX";
    dir_ = ::mkdtemp(templ);
    auto store = FunctionStore::Open(dir_ + "/data");
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = std::make_unique<FunctionStore>(std::move(*store));
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  // A tar built by `fill`, as bytes.
  template <typename Fill>
  std::string Tar(Fill fill, const std::string& filter = "") {
    std::string path = dir_ + "/bundle-" + std::to_string(counter_++) + ".tar";
    {
      TarWriter w(path, filter);
      fill(w);
    }
    return *ReadFile(path);
  }
  std::string HelloTar(const std::string& handler = kHandler) {
    return Tar([&](TarWriter& w) {
      w.File("ember.toml", kToml);
      w.File("handler.py", handler, 0600);
      w.Dir("lib", 0700);
      w.File("lib/run.sh", "#!/bin/sh\n", 0700);
      w.Symlink("link.py", "handler.py");
    });
  }
  std::vector<std::string> Entries(const std::string& sub) {
    auto names = ListDirectory(store_->root() + "/" + sub);
    return names ? *names : std::vector<std::string>{"<missing>"};
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  std::string ExpectStageError(const std::string& tar) {
    auto staged = store_->Stage(tar);
    EXPECT_FALSE(staged) << "staged a bad bundle";
    EXPECT_TRUE(Entries(".staging").empty()) << "left a staging dir behind";
    return staged ? "" : staged.error().message();
  }

  std::string dir_;
  std::unique_ptr<FunctionStore> store_;
  int counter_ = 0;
};

TEST_F(FunctionStoreTest, StageNormalizesAndCommitStores) {
  auto staged = store_->Stage(HelloTar());
  ASSERT_TRUE(staged) << staged.error().ToString();
  EXPECT_EQ(staged->manifest().name, "hello");
  EXPECT_EQ(staged->version().size(), 16u);
  EXPECT_EQ(staged->files(), 5u);
  std::string code = staged->code_dir();
  EXPECT_EQ(*ReadFile(code + "/handler.py"), kHandler);
  // World-readable for the sandbox's unmapped user; executables stay executable.
  EXPECT_EQ(Mode(code), 0755u);
  EXPECT_EQ(Mode(code + "/handler.py"), 0644u);
  EXPECT_EQ(Mode(code + "/lib"), 0755u);
  EXPECT_EQ(Mode(code + "/lib/run.sh"), 0755u);
  EXPECT_EQ(Mode(code + "/ember.toml"), 0644u);
  EXPECT_FALSE(Entries("").empty());
  EXPECT_TRUE(store_->Get("hello").error().code() == ErrorCode::kNotFound);

  std::string version = staged->version();
  auto stored = store_->Commit(std::move(*staged));
  ASSERT_TRUE(stored) << stored.error().ToString();
  EXPECT_EQ(stored->version, version);
  EXPECT_EQ(stored->code_dir, store_->root() + "/hello/" + version + "/code");
  EXPECT_EQ(stored->code_dir.front(), '/');
  EXPECT_EQ(stored->deployed.size(), 20u);  // 2026-01-02T03:04:05Z
  EXPECT_EQ(*ReadFile(stored->code_dir + "/handler.py"), kHandler);
  EXPECT_TRUE(Entries(".staging").empty());
  EXPECT_EQ(Mode(store_->root() + "/hello"), 0711u);
  EXPECT_EQ(Mode(store_->root()), 0711u);
  EXPECT_EQ(Mode(store_->root() + "/hello/" + version), 0711u);

  auto got = store_->Get("hello");
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->version, version);
  EXPECT_EQ(got->code_dir, stored->code_dir);
  EXPECT_EQ(got->deployed, stored->deployed);
  EXPECT_EQ(ManifestToJson(got->manifest), ManifestToJson(stored->manifest));
  auto current = nlohmann::json::parse(*ReadFile(store_->root() + "/hello/current"));
  EXPECT_EQ(current["version"], version);

  auto list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].manifest.name, "hello");
}

TEST_F(FunctionStoreTest, StagedFilesBelongToTheDaemonWithoutSetIdBits) {
  auto staged = store_->Stage(Tar([](TarWriter& w) {
    w.File("ember.toml", kToml, 0644, 4321, 4321);
    w.File("handler.py", kHandler, 06755, 4321, 4321);
  }));
  ASSERT_TRUE(staged) << staged.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((staged->code_dir() + "/handler.py").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_gid, ::getegid());
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(FunctionStoreTest, SandboxesCanPassThroughAPrivateDataDir) {
  ASSERT_EQ(::mkdir((dir_ + "/private").c_str(), 0700), 0);
  ASSERT_TRUE(FunctionStore::Open(dir_ + "/private"));
  EXPECT_EQ(Mode(dir_ + "/private"), 0701u) << "searchable, still not listable";
  EXPECT_EQ(Mode(dir_ + "/private/functions"), 0711u);
}

TEST_F(FunctionStoreTest, VersionDependsOnContentNotOnTarOrder) {
  auto a = store_->Stage(HelloTar());
  auto b = store_->Stage(Tar(
      [](TarWriter& w) {
        w.Symlink("link.py", "handler.py");
        w.File("lib/run.sh", "#!/bin/sh\n", 0750);
        w.File("handler.py", kHandler, 0644);
        w.File("ember.toml", kToml);
      },
      "gzip"));
  auto c = store_->Stage(HelloTar("def handle(event, context):\n    return 'changed'\n"));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->version(), b->version());
  EXPECT_NE(a->version(), c->version());
}

TEST_F(FunctionStoreTest, RedeployKeepsOldVersionsUntilTheEngineDropsThem) {
  auto first = store_->Commit(*store_->Stage(HelloTar()));
  ASSERT_TRUE(first) << first.error().ToString();
  auto second = store_->Commit(*store_->Stage(HelloTar("def handle(e, c):\n    return 2\n")));
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_NE(first->version, second->version);
  EXPECT_EQ(store_->Get("hello")->version, second->version);
  // An instance of the old version still has its code.
  EXPECT_TRUE(PathExists(first->code_dir + "/handler.py"));
  auto old = store_->GetVersion("hello", first->version);
  ASSERT_TRUE(old) << old.error().ToString();
  EXPECT_EQ(old->code_dir, first->code_dir);
  EXPECT_EQ(store_->Versions("hello")->size(), 2u);

  ASSERT_TRUE(store_->RemoveVersionsExcept("hello", {first->version}));
  EXPECT_EQ(store_->Versions("hello")->size(), 2u);
  ASSERT_TRUE(store_->RemoveVersionsExcept("hello", {}));
  EXPECT_EQ(*store_->Versions("hello"), std::vector<std::string>{second->version});
  EXPECT_FALSE(PathExists(first->code_dir));
  EXPECT_TRUE(PathExists(second->code_dir + "/handler.py"));
  EXPECT_TRUE(Entries(".trash").empty());

  // The same bundle again: same version, nothing duplicated, `current` still valid.
  auto again = store_->Commit(*store_->Stage(HelloTar("def handle(e, c):\n    return 2\n")));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->version, second->version);
  EXPECT_EQ(store_->Versions("hello")->size(), 1u);
  EXPECT_TRUE(Entries(".staging").empty());
}

TEST_F(FunctionStoreTest, UncommittedStagingIsRemoved) {
  std::string code;
  {
    auto staged = store_->Stage(HelloTar());
    ASSERT_TRUE(staged);
    code = staged->code_dir();
    EXPECT_TRUE(PathExists(code + "/handler.py"));
  }
  EXPECT_FALSE(PathExists(code));
  EXPECT_TRUE(Entries(".staging").empty());
  EXPECT_FALSE(store_->Get("hello"));
}

TEST_F(FunctionStoreTest, RemoveIsAllOrNothing) {
  ASSERT_TRUE(store_->Commit(*store_->Stage(HelloTar())));
  ASSERT_TRUE(store_->Remove("hello"));
  EXPECT_EQ(store_->Get("hello").error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(PathExists(store_->root() + "/hello"));
  EXPECT_TRUE(Entries(".trash").empty());
  EXPECT_EQ(store_->Remove("hello").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->List()->empty());
}

TEST_F(FunctionStoreTest, NamesFromRequestsCannotEscape) {
  for (const char* bad : {"../data", "..", ".staging", "a/b", "", "Hello"}) {
    EXPECT_EQ(store_->Get(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(store_->Remove(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(store_->GetVersion("hello", "../../x").error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(FunctionStoreTest, OpenCollectsWhatACrashLeft) {
  auto kept = store_->Commit(*store_->Stage(HelloTar()));
  ASSERT_TRUE(kept);
  auto newer = store_->Stage(HelloTar("x = 1\ndef handle(e, c): return x\n"));
  ASSERT_TRUE(newer);
  std::string root = store_->root();
  // Crash after the version rename, before `current`: an extra version of hello.
  std::string staged_dir = newer->code_dir().substr(0, newer->code_dir().size() - 5);
  ASSERT_EQ(::rename(staged_dir.c_str(), (root + "/hello/" + newer->version()).c_str()), 0);
  // Crash in the middle of a first deploy, of a staging and of a removal.
  ASSERT_TRUE(MakeDirs(root + "/half/0123456789abcdef/code"));
  ASSERT_TRUE(MakeDirs(root + "/.staging/deadbeef/code"));
  ASSERT_TRUE(MakeDirs(root + "/.trash/cafe/code"));
  ASSERT_TRUE(WriteFileAtomic(root + "/hello/current.tmp.1.2", "{"));

  auto reopened = FunctionStore::Open(dir_ + "/data");
  ASSERT_TRUE(reopened) << reopened.error().ToString();
  EXPECT_FALSE(PathExists(root + "/half"));
  EXPECT_FALSE(PathExists(root + "/.staging"));
  EXPECT_FALSE(PathExists(root + "/.trash"));
  EXPECT_FALSE(PathExists(root + "/hello/current.tmp.1.2"));
  auto got = reopened->Get("hello");
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->version, kept->version);
  // Old versions are the engine's to remove.
  EXPECT_EQ(reopened->Versions("hello")->size(), 2u);
}

TEST_F(FunctionStoreTest, DamagedFunctionsAreReportedNotFatal) {
  ASSERT_TRUE(store_->Commit(*store_->Stage(HelloTar())));
  std::string other_toml = std::string(kToml);
  other_toml.replace(other_toml.find("hello"), 5, "other");
  ASSERT_TRUE(store_->Commit(*store_->Stage(Tar([&](TarWriter& w) {
    w.File("ember.toml", other_toml);
    w.File("handler.py", kHandler);
  }))));
  ASSERT_TRUE(WriteFileAtomic(store_->root() + "/other/current", "not json"));
  EXPECT_EQ(store_->Get("other").error().code(), ErrorCode::kCorrupt);
  auto list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].manifest.name, "hello");
}

TEST_F(FunctionStoreTest, RefusesUnsafeOrBrokenBundles) {
  EXPECT_NE(ExpectStageError(Tar([](TarWriter& w) {
              w.File("ember.toml", kToml);
              w.File("../escape.py", "x");
            })).find("'../escape.py'"),
            std::string::npos);
  EXPECT_FALSE(PathExists(store_->root() + "/.staging/escape.py"));
  EXPECT_NE(ExpectStageError(Tar([](TarWriter& w) {
              w.File("ember.toml", kToml);
              w.Symlink("lib", "/etc");
              w.File("lib/handler.py", "x");
            })).find("lib/handler.py"),
            std::string::npos);
  EXPECT_NE(ExpectStageError(Tar([](TarWriter& w) {
              w.File("ember.toml", kToml);
              w.CharDevice("dev");
            })).find("bundle entry 'dev' is a character device"),
            std::string::npos);
  EXPECT_EQ(ExpectStageError(Tar([](TarWriter& w) { w.File("handler.py", kHandler); })),
            "no ember.toml in the bundle");
  EXPECT_EQ(ExpectStageError(Tar([](TarWriter& w) { w.File("ember.toml", kToml); })),
            "handler module 'handler' not found in the bundle (looked for handler.py and "
            "handler/__init__.py)");
  EXPECT_NE(ExpectStageError(Tar([](TarWriter& w) {
              w.File("ember.toml", "name = \"x\"\nruntime = \"python3.11\"\nhandler = 5\n");
            })).find("ember.toml: handler = 5: expected a string"),
            std::string::npos);
  EXPECT_NE(ExpectStageError("this is not a tar file at all, just some text").find("tar"),
            std::string::npos);
}

TEST_F(FunctionStoreTest, LimitsAreNamed) {
  std::string many = Tar([](TarWriter& w) {
    w.File("ember.toml", kToml);
    w.File("handler.py", kHandler);
    for (int i = 0; i < 10000; ++i) w.File("f" + std::to_string(i), "");
  });
  EXPECT_NE(ExpectStageError(many).find("more than 10000 files, directories and symlinks"),
            std::string::npos);

  // 257 MiB of zeros compress to almost nothing; the header alone is refused.
  std::string path = dir_ + "/big.tar.zst";
  {
    struct archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_zstd(a);
    ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, "big");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 257LL << 20);
    archive_write_header(a, e);
    std::string zeros(1 << 20, '\0');
    for (int i = 0; i < 257; ++i) archive_write_data(a, zeros.data(), zeros.size());
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
  }
  EXPECT_NE(ExpectStageError(*ReadFile(path)).find("more than 256MiB of files"), std::string::npos);
}

TEST_F(FunctionStoreTest, StageFileReadsATarOnDisk) {
  std::string path = dir_ + "/upload.tar";
  {
    TarWriter w(path);
    w.File("ember.toml", kToml);
    w.File("handler.py", kHandler);
  }
  auto staged = store_->StageFile(path);
  ASSERT_TRUE(staged) << staged.error().ToString();
  EXPECT_TRUE(PathExists(path)) << "the caller's file is the caller's";
  EXPECT_TRUE(store_->Commit(std::move(*staged)));
}

}  // namespace
}  // namespace ember::engine
