// Operations on one pooled cgroup ("slot"), shared by Pool and Lease: naming, creation, emptying
// and the small state record kept in the slot's lock file.
//
// A slot is claimed through a byte lock (slot_locks.h), held for a lease's life and dropped by the
// kernel when its holder dies; the record file <lock_dir>/<slot>.lock keeps the slot's state, one
// space-padded line: "free" once a slot was emptied, "claimed <pid>" while a lease
// holds it, "creating" while its directories are being made. A lock that can be taken over anything
// but "free" therefore means its last holder crashed, and the slot is reset before reuse.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/limits.h"

namespace ember::cgroup {

inline constexpr std::string_view kSlotPrefix = "pool-";
inline constexpr std::string_view kStateFree = "free";
inline constexpr std::string_view kStateCreating = "creating";
// The record is padded with spaces to this size, newline included.
inline constexpr size_t kStateRecordSize = 32;

// "pool-7" -> 7; -1 for names that are not slots (control files, foreign directories).
long SlotNumber(std::string_view name);
std::string SlotName(long number);

// The slot directories of `slot` under pool `name`.
SlotDirs DirsOf(const Hierarchy& hierarchy, const std::string& name, const std::string& slot);

// The slot's state record (read and written only by the holder of the slot's lock).
Result<std::string> ReadSlotState(const std::string& record_path);
Status WriteSlotState(const std::string& record_path, std::string_view state);

// Called after each directory the pool makes; tests use it to emulate cgroupfs, which fills a
// new directory with its control files.
using MkdirHook = std::function<Status(const std::string& dir)>;

// mkdir that accepts an existing directory (completing a slot a crashed creator left half-made).
Status MakeCgroupDir(const std::string& dir, const MkdirHook& hook);
// rmdir of a cgroup, retried while the kernel still reports it busy (tasks that were just killed
// leave a populated cgroup for a moment). Outside cgroupfs (a fixture tree) the files go too.
Status RemoveCgroupDir(const std::string& dir);

// The pids listed in `dir`/cgroup.procs.
Result<std::vector<pid_t>> ListProcs(const std::string& dir);

// Kills everything in the slot and waits (at most `timeout`) until every cgroup.procs is empty.
// Only the slot's own processes are signalled: v2 uses cgroup.kill; otherwise each pid is
// pinned with a pidfd and signalled only if /proc/<pid>/cgroup still places it in the slot, so a
// recycled pid can never be hit. `suffix` is "/<name>/<slot>".
Status EmptySlot(const SlotDirs& dirs, Version version, const std::string& suffix,
                 std::chrono::milliseconds timeout);

// One round of EmptySlot's kills, without waiting or checking.
void KillSlotOnce(const SlotDirs& dirs, Version version, const std::string& suffix);

// What a released or stale slot goes through before reuse. Memory still charged to the slot is
// deliberately left alone: it is mostly page cache of the shared images, which the next sandbox
// needs. Scrubbing it (v1 memory.force_empty, v2 memory.reclaim) evicted those pages from the
// host's page cache and made every start re-read the image: +3 ms per `ember run` here. A
// smaller limit set by the next user reclaims them only if it must.
Status ResetSlot(const SlotDirs& dirs, Version version, const std::string& suffix,
                 std::chrono::milliseconds timeout);

// "key N" lines (memory.oom_control, memory.events): the value of `key`.
Result<uint64_t> ReadKeyedCounter(const std::string& path, std::string_view key);
// OOM kills counted by the slot's memory cgroup since it was created (0 for a slot without one).
Result<uint64_t> ReadOomKills(const SlotDirs& dirs, Version version);

}  // namespace ember::cgroup
