#include "image/name.h"

#include <gtest/gtest.h>

namespace ember::image {
namespace {

TEST(ImageName, Validates) {
  EXPECT_TRUE(ValidateImageName("python3.11"));
  EXPECT_TRUE(ValidateImageName("a_b-c.d"));
  auto bad = ValidateImageName("Python");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find(kNameRule), std::string::npos);
  EXPECT_FALSE(ValidateImageName(""));
  EXPECT_FALSE(ValidateImageName(".hidden"));
  EXPECT_FALSE(ValidateImageName("a/b"));
  EXPECT_FALSE(ValidateImageName(std::string(129, 'a')));
  EXPECT_TRUE(ValidateImageName(std::string(128, 'a')));
}

TEST(ImageName, Derives) {
  EXPECT_EQ(NameFromPath("/x/Busybox-1.36.tar.gz"), "busybox-1.36");
  EXPECT_EQ(NameFromPath("/srv/rootfs/"), "rootfs");
  EXPECT_EQ(NameFromPath("img.oci"), "img");
  EXPECT_EQ(NameFromRepoTag("docker.io/library/python:3.11-slim"), "python-3.11-slim");
  EXPECT_EQ(NameFromRepoTag("busybox:latest"), "busybox");
  EXPECT_EQ(SanitizeImageName("__My Image!"), "my-image");
  EXPECT_EQ(SanitizeImageName("!!!"), "");
}

}  // namespace
}  // namespace ember::image
