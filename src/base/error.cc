#include "base/error.h"

#include <cstring>

namespace ember {
namespace {

ErrorCode CodeForErrno(int e) {
  switch (e) {
    case ENOENT:
      return ErrorCode::kNotFound;
    case EEXIST:
      return ErrorCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return ErrorCode::kPermissionDenied;
    case EINVAL:
      return ErrorCode::kInvalidArgument;
    case EBUSY:
      return ErrorCode::kBusy;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
      return ErrorCode::kResourceExhausted;
    case ENOSYS:
    case EOPNOTSUPP:
      return ErrorCode::kUnsupported;
    case ETIMEDOUT:
      return ErrorCode::kTimeout;
    default:
      return ErrorCode::kIo;
  }
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kExecFailed:
      return "exec_failed";
  }
  return "unknown";
}

Error Error::Errno(std::string message, int sys_errno) {
  return Error(CodeForErrno(sys_errno), std::move(message), sys_errno);
}

Error Error::Context(std::string_view context) && {
  std::string message;
  message.reserve(context.size() + 2 + message_.size());
  message.append(context).append(": ").append(message_);
  message_ = std::move(message);
  return std::move(*this);
}

Error Error::Context(std::string_view context) const& { return Error(*this).Context(context); }

Error Error::WithHint(std::string hint) && {
  hint_ = std::move(hint);
  return std::move(*this);
}

std::string Error::ToString() const {
  std::string out = message_;
  if (sys_errno_ != 0) {
    const char* name = strerrorname_np(sys_errno_);
    out.append(": ").append(name ? name : "E?");
    out.append(" (").append(hint_.empty() ? strerror(sys_errno_) : hint_).append(")");
  } else if (!hint_.empty()) {
    out.append(" (").append(hint_).append(")");
  }
  return out;
}

}  // namespace ember
