#include "engine/log_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "base/fs.h"
#include "engine/manifest_rules.h"

namespace ember::engine {
namespace {

std::string FunctionLogDir(const std::string& logs_dir, std::string_view function) {
  return logs_dir + "/" + std::string(function);
}

// The instance a log file belongs to, or "" if the name is not a log file's.
std::string InstanceOf(std::string_view file) {
  for (std::string_view suffix : {".log", ".log.1"}) {
    if (file.size() > suffix.size() && file.ends_with(suffix)) {
      std::string_view instance = file.substr(0, file.size() - suffix.size());
      if (ValidateInstanceId(instance)) return std::string(instance);
    }
  }
  return "";
}

}  // namespace

Status ValidateInstanceId(std::string_view instance) {
  bool ok = !instance.empty() && instance.size() <= 128 && instance != "." && instance != "..";
  for (char c : instance) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return Ok();
  return Fail(ErrorCode::kInvalidArgument, "invalid instance id '" + std::string(instance) +
                                               "': use [A-Za-z0-9._-], at most 128 characters");
}

std::string InstanceLogPath(const std::string& logs_dir, std::string_view function,
                            std::string_view instance) {
  return FunctionLogDir(logs_dir, function) + "/" + std::string(instance) + ".log";
}

Result<LogSink> LogSink::Open(const std::string& path, uint64_t max_bytes) {
  if (max_bytes == 0) return Fail(ErrorCode::kInvalidArgument, "log " + path + ": a zero cap");
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) EMBER_TRY(MakeDirs(path.substr(0, slash), 0700));
  LogSink sink;
  EMBER_ASSIGN_OR_RETURN(sink.fd_, OpenFile(path, O_WRONLY | O_CREAT | O_APPEND, 0600));
  struct stat st {};
  if (::fstat(sink.fd_.get(), &st) != 0) return FailErrno("stat " + path);
  sink.path_ = path;
  sink.size_ = static_cast<uint64_t>(st.st_size);
  sink.max_bytes_ = max_bytes;
  return sink;
}

Status LogSink::Rotate() {
  std::string previous = path_ + ".1";
  if (::rename(path_.c_str(), previous.c_str()) != 0) {
    return FailErrno("rotate " + path_ + " to " + previous);
  }
  fd_.reset();
  EMBER_ASSIGN_OR_RETURN(fd_, OpenFile(path_, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600));
  size_ = 0;
  return Ok();
}

Status LogSink::Write(std::string_view data) {
  if (!fd_.valid()) return Fail(ErrorCode::kInternal, "log " + path_ + " is not open");
  if (data.size() > max_bytes_) {
    dropped_ += data.size() - max_bytes_;
    data.remove_prefix(data.size() - max_bytes_);
  }
  if (data.empty()) return Ok();
  if (size_ > 0 && size_ + data.size() > max_bytes_) EMBER_TRY(Rotate());
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("write " + path_);
    size_ += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Result<std::vector<std::string>> ListLogInstances(const std::string& logs_dir,
                                                  std::string_view function) {
  EMBER_TRY(rules::CheckFunctionName(function));
  std::string dir = FunctionLogDir(logs_dir, function);
  auto names = ListDirectory(dir);
  if (!names) {
    if (names.error().sys_errno() == ENOENT) return std::vector<std::string>{};
    return Fail(std::move(names).error());
  }
  std::map<std::string, int64_t> last_write;  // instance -> newest mtime in ns
  for (const auto& name : *names) {
    std::string instance = InstanceOf(name);
    if (instance.empty()) continue;
    struct stat st {};
    if (::lstat((dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    auto [it, inserted] = last_write.emplace(instance, mtime);
    if (!inserted) it->second = std::max(it->second, mtime);
  }
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [instance, mtime] : last_write) order.emplace_back(mtime, instance);
  std::sort(order.begin(), order.end());
  std::vector<std::string> instances;
  for (auto& entry : order) instances.push_back(std::move(entry.second));
  return instances;
}

Status PruneLogs(const std::string& logs_dir, std::string_view function, size_t keep_instances,
                 const std::set<std::string>& live) {
  EMBER_ASSIGN_OR_RETURN(auto instances, ListLogInstances(logs_dir, function));
  std::vector<std::string> candidates;
  for (auto& instance : instances) {
    if (live.count(instance) == 0) candidates.push_back(std::move(instance));
  }
  if (candidates.size() <= keep_instances) return Ok();
  candidates.resize(candidates.size() - keep_instances);  // the oldest ones
  std::string dir = FunctionLogDir(logs_dir, function);
  for (const auto& instance : candidates) {
    for (const char* suffix : {".log.1", ".log"}) {
      std::string path = dir + "/" + instance + suffix;
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return FailErrno("remove " + path);
    }
  }
  return Ok();
}

Status RemoveFunctionLogs(const std::string& logs_dir, std::string_view function) {
  EMBER_TRY(rules::CheckFunctionName(function));
  return RemoveTree(FunctionLogDir(logs_dir, function));
}

}  // namespace ember::engine
