#include "sandbox/cgroup/slot.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <charconv>
#include <sstream>
#include <thread>

#include "sys/syscalls.h"

namespace ember::cgroup {

long SlotNumber(std::string_view name) {
  if (name.substr(0, kSlotPrefix.size()) != kSlotPrefix) return -1;
  std::string_view digits = name.substr(kSlotPrefix.size());
  long n = -1;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return -1;
  return n;
}

std::string SlotName(long number) { return std::string(kSlotPrefix) + std::to_string(number); }

SlotDirs DirsOf(const Hierarchy& hierarchy, const std::string& name, const std::string& slot) {
  auto dir = [&](Controller c) { return hierarchy.RootFor(c) + "/" + name + "/" + slot; };
  return SlotDirs{dir(Controller::kMemory), dir(Controller::kCpu), dir(Controller::kPids)};
}

Result<std::string> ReadSlotState(const std::string& record_path) {
  int fd = ::open(record_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();  // unknown: reset before use
    return FailErrno("open slot state " + record_path);
  }
  UniqueFd owned(fd);
  char buf[64];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  if (n < 0) return FailErrno("read slot state " + record_path);
  std::string state(buf, static_cast<size_t>(n));
  while (!state.empty() && (state.back() == '\n' || state.back() == ' ')) state.pop_back();
  return state;
}

Status WriteSlotState(const std::string& record_path, std::string_view state) {
  // A fixed-width record overwritten in place: no ftruncate, which on ext4 frees a block through
  // the journal and cost ~200µs on the claim path. No fsync: the state only matters while the
  // cgroups exist, and they do not survive a reboot.
  std::string record(state);
  if (record.size() + 1 > kStateRecordSize) {
    return Fail(ErrorCode::kInternal, "slot state '" + record + "' too long for " + record_path);
  }
  record.resize(kStateRecordSize - 1, ' ');
  record.push_back('\n');
  EMBER_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(record_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (::pwrite(fd.get(), record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
    return FailErrno("write slot state " + record_path);
  }
  return Ok();
}

Status MakeCgroupDir(const std::string& dir, const MkdirHook& hook) {
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno != EEXIST) return FailErrno("create cgroup " + dir);
    return Ok();
  }
  if (hook) EMBER_TRY(hook(dir));
  return Ok();
}

static bool OnCgroupFs(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return true;  // let rmdir report the real error
  return fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC;
}

Status RemoveCgroupDir(const std::string& dir) {
  if (!PathExists(dir)) return Ok();
  if (!OnCgroupFs(dir)) return RemoveTree(dir);
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return Ok();
    if (errno != EBUSY || attempt >= 100) return FailErrno("remove cgroup " + dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<std::vector<pid_t>> ListProcs(const std::string& dir) {
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/cgroup.procs"));
  std::vector<pid_t> pids;
  std::istringstream in(text);
  pid_t pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// True if /proc/<pid>/cgroup places the process in a cgroup whose path ends with `suffix`.
static bool InSlot(pid_t pid, const std::string& suffix) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!text) return false;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() >= suffix.size() &&
        line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

static void KillPinned(pid_t pid, const std::string& suffix) {
  UniqueFd pidfd(sys::PidfdOpen(pid));
  if (!pidfd) return;  // already gone
  // The pidfd now pins this exact process; checking its cgroup after opening it closes the
  // window in which the pid could have been recycled by a process outside the slot.
  if (InSlot(pid, suffix)) (void)sys::PidfdSendSignal(pidfd.get(), SIGKILL);
}

void KillSlotOnce(const SlotDirs& dirs, Version version, const std::string& suffix) {
  if (version == Version::kV2 && PathExists(dirs.memory + "/cgroup.kill")) {
    (void)WriteControlFile(dirs.memory + "/cgroup.kill", "1");
    return;
  }
  for (const std::string& dir : dirs.Distinct()) {
    auto pids = ListProcs(dir);
    if (!pids) continue;
    for (pid_t pid : *pids) KillPinned(pid, suffix);
  }
}

Status EmptySlot(const SlotDirs& dirs, Version version, const std::string& suffix,
                 std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(100);
  std::vector<std::string> distinct = dirs.Distinct();
  for (;;) {
    std::vector<pid_t> left;
    std::string where;
    for (const std::string& dir : distinct) {
      EMBER_ASSIGN_OR_RETURN(auto pids, ListProcs(dir));
      if (!pids.empty() && where.empty()) where = dir;
      left.insert(left.end(), pids.begin(), pids.end());
    }
    if (left.empty()) return Ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string list;
      for (pid_t p : left) list += " " + std::to_string(p);
      return Fail(ErrorCode::kBusy, "cgroup " + where + " still has processes" + list + " after " +
                                        std::to_string(timeout.count()) + "ms of SIGKILL");
    }
    // Killed again every round: a process may have forked between the listing and the kill.
    if (version == Version::kV2 && PathExists(dirs.memory + "/cgroup.kill")) {
      EMBER_TRY_CTX(WriteControlFile(dirs.memory + "/cgroup.kill", "1"), "empty cgroup");
    } else {
      for (pid_t pid : left) KillPinned(pid, suffix);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

Status ResetSlot(const SlotDirs& dirs, Version version, const std::string& suffix,
                 std::chrono::milliseconds timeout) {
  return EmptySlot(dirs, version, suffix, timeout);
}

Result<uint64_t> ReadKeyedCounter(const std::string& path, std::string_view key) {
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::istringstream in(text);
  std::string name;
  uint64_t value;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return Fail(ErrorCode::kNotFound, "no '" + std::string(key) + "' in " + path);
}

Result<uint64_t> ReadOomKills(const SlotDirs& dirs, Version version) {
  if (dirs.memory.empty()) return uint64_t{0};  // charged to a shared memory cgroup, counted there
  if (version == Version::kV1)
    return ReadKeyedCounter(dirs.memory + "/memory.oom_control", "oom_kill");
  return ReadKeyedCounter(dirs.memory + "/memory.events", "oom_kill");
}

}  // namespace ember::cgroup
