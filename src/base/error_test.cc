#include "base/error.h"

#include <gtest/gtest.h>

namespace ember {
namespace {

Result<int> FailsWithErrno() { return FailErrno("open /nope", ENOENT); }

Result<int> AddsContext() {
  EMBER_TRY_CTX(FailsWithErrno(), "load image test");
  return 1;
}

Result<int> Assigns() {
  EMBER_ASSIGN_OR_RETURN(int v, Result<int>(41));
  return v + 1;
}

TEST(ErrorTest, ErrnoNamesTheCodeAndDescription) {
  auto r = FailsWithErrno();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
  EXPECT_EQ(r.error().ToString(), "open /nope: ENOENT (No such file or directory)");
}

TEST(ErrorTest, ContextIsPrependedOnTheWayUp) {
  auto r = AddsContext();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().ToString(),
            "load image test: open /nope: ENOENT (No such file or directory)");
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST(ErrorTest, HintReplacesTheErrnoDescriptionAndSurvivesContext) {
  Error e =
      Error::Errno("mount overlay on /x", EINVAL).WithHint("upper is on tmpfs without xattrs");
  EXPECT_EQ(std::move(e).Context("start sb-1").ToString(),
            "start sb-1: mount overlay on /x: EINVAL (upper is on tmpfs without xattrs)");
  EXPECT_EQ(Error(ErrorCode::kCorrupt, "bad image").WithHint("not EROFS").ToString(),
            "bad image (not EROFS)");
}

TEST(ErrorTest, AssignOrReturnUnwraps) { EXPECT_EQ(*Assigns(), 42); }

TEST(ErrorTest, PlainErrorHasNoErrnoSuffix) {
  Error e(ErrorCode::kInvalidArgument, "bad --memory");
  EXPECT_EQ(e.ToString(), "bad --memory");
  EXPECT_EQ(ErrorCodeName(e.code()), "invalid_argument");
}

}  // namespace
}  // namespace ember
