#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "sandbox/cgroup/pool.h"

namespace ember::cgroup {

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (held()) {
      auto released = Release();
      if (!released) spdlog::warn("release cgroup slot {}: {}", slot_, released.error().ToString());
    }
    slot_ = std::move(other.slot_);
    lock_path_ = std::move(other.lock_path_);
    suffix_ = std::move(other.suffix_);
    version_ = other.version_;
    dirs_ = std::move(other.dirs_);
    features_ = other.features_;
    release_timeout_ = other.release_timeout_;
    lock_ = std::move(other.lock_);
    v2_dir_ = std::move(other.v2_dir_);
    peak_fd_ = std::move(other.peak_fd_);
    oom_kills_at_claim_ = other.oom_kills_at_claim_;
  }
  return *this;
}

Lease::~Lease() {
  if (!held()) return;
  auto released = Release();
  if (!released) spdlog::warn("release cgroup slot {}: {}", slot_, released.error().ToString());
}

Status Lease::Apply(const sandbox::CgroupLimits& limits) {
  EMBER_ASSIGN_OR_RETURN(auto writes, PlanLimits(version_, limits, features_));
  if (dirs_.memory.empty()) {
    std::erase_if(writes,
                  [](const ControlWrite& w) { return w.controller == Controller::kMemory; });
  }
  EMBER_TRY_CTX(ApplyWrites(writes, dirs_), "cgroup slot " + slot_);
  return Ok();
}

Status Lease::Attach(pid_t pid) {
  if (!held()) return Fail(ErrorCode::kInvalidArgument, "attach to a released cgroup slot");
  std::string value = std::to_string(pid);
  for (const std::string& dir : dirs_.Distinct()) {
    EMBER_TRY_CTX(WriteControlFile(dir + "/cgroup.procs", value),
                  "attach pid " + value + " to cgroup slot " + slot_);
  }
  return Ok();
}

Result<std::vector<UniqueFd>> Lease::OpenProcsFiles() const {
  if (!held()) return Fail(ErrorCode::kInvalidArgument, "open a released cgroup slot");
  std::vector<UniqueFd> fds;
  for (const std::string& dir : dirs_.Distinct()) {
    EMBER_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC, 0));
    fds.push_back(std::move(fd));
  }
  return fds;
}

void Lease::KillAll() const {
  if (!held()) return;
  // Release later waits for the slot to be empty.
  KillSlotOnce(dirs_, version_, suffix_);
}

Result<uint64_t> Lease::OomKills() const {
  EMBER_ASSIGN_OR_RETURN(uint64_t now, ReadOomKills(dirs_, version_));
  return now >= oom_kills_at_claim_ ? now - oom_kills_at_claim_ : now;
}

Result<uint64_t> Lease::MemoryPeakBytes() const {
  if (dirs_.memory.empty()) {
    return Fail(ErrorCode::kUnsupported, "cgroup slot " + slot_ +
                                             " has no memory cgroup of its own (its processes are "
                                             "charged to a shared one)");
  }
  std::string text;
  std::string path;
  if (version_ == Version::kV1) {
    path = dirs_.memory + "/memory.max_usage_in_bytes";
    EMBER_ASSIGN_OR_RETURN(text, ReadFile(path));
  } else {
    path = dirs_.memory + "/memory.peak";
    if (!peak_fd_) {
      return Fail(ErrorCode::kUnsupported, path + " does not exist (kernel before 5.19)");
    }
    char buf[32];
    ssize_t n = ::pread(peak_fd_.get(), buf, sizeof buf - 1, 0);
    if (n < 0) return FailErrno("read " + path);
    text.assign(buf, static_cast<size_t>(n));
  }
  try {
    return static_cast<uint64_t>(std::stoull(text));
  } catch (...) {
    return Fail(ErrorCode::kCorrupt, "unexpected content '" + text + "' in " + path);
  }
}

Status Lease::Release() {
  if (!held()) return Ok();
  v2_dir_.reset();
  peak_fd_.reset();
  // Whatever happens below, the lock is dropped: a failed reset leaves the record "claimed",
  // which makes the next claimer reset the slot again instead of trusting it.
  SlotLock lock = std::move(lock_);
  EMBER_TRY_CTX(ResetSlot(dirs_, version_, suffix_, release_timeout_),
                "release cgroup slot " + slot_);
  return WriteSlotState(lock_path_, kStateFree);
}

}  // namespace ember::cgroup
