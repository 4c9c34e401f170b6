// Errors are values: every fallible function returns Result<T> (tl::expected<T, Error>).
// An Error carries a code (what kind of failure, used for exit codes and HTTP statuses later),
// the errno that caused it (0 if none) and a message that grows context on the way up:
//   Error::Errno("mount overlay on /x").Context("start sandbox i-42")
//     -> "start sandbox i-42: mount overlay on /x: EINVAL (Invalid argument)"
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace ember {

enum class ErrorCode {
  kInternal,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnavailable,  // the host lacks a feature or a resource right now
  kCorrupt,      // stored data failed validation
  kResourceExhausted,
  kBusy,  // refused because something is in use
  kTimeout,
  kUnsupported,
  kIo,
  kExecFailed,  // a sandboxed command could not be executed (errno says why)
};

std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  // An error from a failed syscall; the code is derived from errno.
  static Error Errno(std::string message, int sys_errno = errno);

  ErrorCode code() const { return code_; }
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }

  // A likely cause, shown instead of the generic errno description:
  //   "mount image x (/path): EINVAL (the file is not a valid EROFS image)".
  Error WithHint(std::string hint) &&;

  // Prefixes "context: " to the message. Use as `std::move(err).Context("...")`.
  Error Context(std::string_view context) &&;
  Error Context(std::string_view context) const&;

  // The full line: message, then ": ENAME (description or hint)" when an errno is set, or
  // " (hint)" when only a hint is.
  std::string ToString() const;

 private:
  ErrorCode code_;
  int sys_errno_;
  std::string message_;
  std::string hint_;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> Fail(ErrorCode code, std::string message, int sys_errno = 0) {
  return tl::unexpected<Error>(Error(code, std::move(message), sys_errno));
}
inline tl::unexpected<Error> FailErrno(std::string message, int sys_errno = errno) {
  return tl::unexpected<Error>(Error::Errno(std::move(message), sys_errno));
}
inline tl::unexpected<Error> Fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

inline Status Ok() { return {}; }

}  // namespace ember

#define EMBER_CONCAT_INNER(a, b) a##b
#define EMBER_CONCAT(a, b) EMBER_CONCAT_INNER(a, b)

// Returns the error of a failed Result/Status from the enclosing function.
#define EMBER_TRY(expr)                                              \
  do {                                                               \
    auto ember_try_result_ = (expr);                                 \
    if (!ember_try_result_) {                                        \
      return ::tl::unexpected(std::move(ember_try_result_).error()); \
    }                                                                \
  } while (0)

// Like EMBER_TRY, with context prepended to the error message.
#define EMBER_TRY_CTX(expr, ctx)                                                  \
  do {                                                                            \
    auto ember_try_result_ = (expr);                                              \
    if (!ember_try_result_) {                                                     \
      return ::tl::unexpected(std::move(ember_try_result_).error().Context(ctx)); \
    }                                                                             \
  } while (0)

// EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path));
#define EMBER_ASSIGN_OR_RETURN(lhs, expr) \
  EMBER_ASSIGN_OR_RETURN_IMPL(EMBER_CONCAT(ember_result_, __LINE__), lhs, expr)
#define EMBER_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)  \
  auto tmp = (expr);                                 \
  if (!tmp) {                                        \
    return ::tl::unexpected(std::move(tmp).error()); \
  }                                                  \
  lhs = std::move(*tmp)
