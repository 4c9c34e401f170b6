#include "image/build.h"

#include <gtest/gtest.h>

namespace ember::image {
namespace {

TEST(Recipes, UnknownNameListsKnownOnes) {
  auto r = FindRecipe("python2");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("python3.11"), std::string::npos);
  auto py = FindRecipe("python3.11");
  ASSERT_TRUE(py);
  EXPECT_EQ(py->suite, "bookworm");
  EXPECT_EQ(py->packages,
            (std::vector<std::string>{"python3.11", "libpython3.11", "python3-minimal"}));
}

TEST(DebianMirror, Deb822PicksTheMainSuiteStanza) {
  std::string sources =
      "Types: deb\n# comment\nURIs: http://security.example/debian-security\n"
      "Suites: bookworm-security\nComponents: main\n\n"
      "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
      "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: "
      "main\n\n"
      "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
      "Components: main contrib\n";
  auto m = FindDebianMirror("bookworm", {{"/etc/apt/sources.list.d/debian.sources", sources}});
  EXPECT_EQ(m.uri, "http://mirror.example/debian");
  EXPECT_EQ(m.origin, "/etc/apt/sources.list.d/debian.sources");
}

TEST(DebianMirror, OneLineFormatAndFallback) {
  std::string list =
      "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
      "# deb http://commented.example/debian bookworm main\n"
      "deb [arch=amd64 signed-by=/x.gpg] http://one.example/debian bookworm main non-free\n";
  auto m = FindDebianMirror("bookworm", {{"/etc/apt/sources.list", list}});
  EXPECT_EQ(m.uri, "http://one.example/debian");
  auto none =
      FindDebianMirror("bookworm", {{"/etc/apt/sources.list", "deb cdrom:/x bookworm main\n"}});
  EXPECT_EQ(none.uri, kDefaultDebianMirror);
  EXPECT_EQ(none.origin, "default");
}

}  // namespace
}  // namespace ember::image
