#include "image/layer_plan.h"

#include <gtest/gtest.h>

namespace ember::image {
namespace {

EntryHeader H(std::string path, EntryType type = EntryType::kFile, std::string link = "") {
  return {std::move(path), type, std::move(link)};
}

TEST(NormalizeEntryPath, StripsDotsAndSlashes) {
  EXPECT_EQ(*NormalizeEntryPath("./a//b/"), "a/b");
  EXPECT_EQ(*NormalizeEntryPath("./"), "");
  EXPECT_FALSE(NormalizeEntryPath("/etc/x"));
  EXPECT_FALSE(NormalizeEntryPath("../x"));
  EXPECT_FALSE(NormalizeEntryPath("a/../../x"));
  EXPECT_FALSE(NormalizeEntryPath("a/.."));
}

TEST(LayerPlanner, RefusesUnsafeEntriesNamingThem) {
  LayerPlanner p(false);
  auto abs = p.Plan(H("/etc/x"));
  ASSERT_FALSE(abs);
  EXPECT_NE(abs.error().message().find("'/etc/x'"), std::string::npos) << abs.error().message();
  EXPECT_FALSE(p.Plan(H("../x")));
  ASSERT_TRUE(p.Plan(H("a", EntryType::kSymlink)));
  auto through = p.Plan(H("a/etc/passwd"));
  ASSERT_FALSE(through);
  EXPECT_NE(through.error().message().find("symlink"), std::string::npos);
  auto hard = p.Plan(H("h", EntryType::kHardlink, "../../x"));
  ASSERT_FALSE(hard);
  EXPECT_NE(hard.error().message().find("'h'"), std::string::npos);
  EXPECT_FALSE(p.Plan(H("h2", EntryType::kHardlink, "missing")));
  auto dev = p.Plan(H("dev/sda", EntryType::kBlockDevice));
  ASSERT_FALSE(dev);
  EXPECT_NE(dev.error().message().find("dev/sda"), std::string::npos);
  EXPECT_FALSE(p.Plan(H("dev/null", EntryType::kCharDevice)));
  EXPECT_TRUE(p.Plan(H("fifo", EntryType::kFifo)));
  ASSERT_TRUE(p.Plan(H("f")));
  EXPECT_FALSE(p.Plan(H("f/x"))) << "a file is not a parent";
}

TEST(LayerPlanner, CreatesMissingParentsAndReplacesEntries) {
  LayerPlanner p(false);
  auto e = p.Plan(H("a/b/c"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->new_parents, (std::vector<std::string>{"a", "a/b"}));
  auto again = p.Plan(H("a/b", EntryType::kSymlink));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->removals, std::vector<std::string>{"a/b"});
  EXPECT_EQ(p.tree().count("a/b/c"), 0u);
  auto dir = p.Plan(H("a", EntryType::kDir));
  ASSERT_TRUE(dir);
  EXPECT_TRUE(dir->removals.empty()) << "a directory over a directory only updates metadata";
  auto link = p.Plan(H("l", EntryType::kHardlink, "./a/b"));
  ASSERT_TRUE(link);
  EXPECT_EQ(link->link_target, "a/b");
}

TEST(LayerPlanner, WhiteoutsOnlyInLayeredMode) {
  LayerPlanner plain(false);
  ASSERT_TRUE(plain.Plan(H("etc/.wh.x")));
  EXPECT_EQ(plain.tree().count("etc/.wh.x"), 1u);

  LayerPlanner p(true);
  p.BeginLayer();
  ASSERT_TRUE(p.Plan(H("etc/x")));
  ASSERT_TRUE(p.Plan(H("etc/y")));
  p.BeginLayer();
  auto wh = p.Plan(H("etc/.wh.x"));
  ASSERT_TRUE(wh);
  EXPECT_EQ(wh->kind, PlannedEntry::Kind::kWhiteout);
  EXPECT_EQ(wh->removals, std::vector<std::string>{"etc/x"});
  EXPECT_EQ(p.tree().count("etc/x"), 0u);
  EXPECT_EQ(p.tree().count("etc/y"), 1u);
  auto missing = p.Plan(H("etc/.wh.nothing"));
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->removals.empty());
  auto meta = p.Plan(H(".wh..wh.plnk"));
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->kind, PlannedEntry::Kind::kSkip);
}

TEST(LayerPlanner, OpaqueHidesOnlyLowerLayers) {
  LayerPlanner p(true);
  p.BeginLayer();
  for (const char* path : {"d/old1", "d/sub/old2", "d/keep/lower", "other"})
    ASSERT_TRUE(p.Plan(H(path)));
  p.BeginLayer();
  ASSERT_TRUE(p.Plan(H("d/new")));         // before the marker
  ASSERT_TRUE(p.Plan(H("d/keep/upper")));  // keeps d/keep as a parent
  auto opq = p.Plan(H("d/.wh..wh..opq"));
  ASSERT_TRUE(opq);
  EXPECT_EQ(opq->kind, PlannedEntry::Kind::kOpaque);
  EXPECT_EQ(opq->removals, (std::vector<std::string>{"d/keep/lower", "d/old1", "d/sub"}));
  ASSERT_TRUE(p.Plan(H("d/after")));
  std::vector<std::string> left;
  for (const auto& [path, type] : p.tree()) left.push_back(path);
  EXPECT_EQ(left,
            (std::vector<std::string>{"d", "d/after", "d/keep", "d/keep/upper", "d/new", "other"}));
}

}  // namespace
}  // namespace ember::image
