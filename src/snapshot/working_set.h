// The working set of a snapshot (docs/snapshot-format.md, working-set section): the pages of
// the image that the first invocation after a restore touched, in address order. A cold boot
// reads exactly those in one sequential pass before the restored task runs, so its first
// invocation does not fault them in one by one from disk.
//
// Recorded from a restored process after its first invocation: its areas that map the image
// file (matched by device and inode in /proc/PID/maps) and, in them, the pages the process has
// in its page tables (/proc/PID/pagemap "present", or swapped). A restore itself maps the image
// without touching it, so what is present was touched by the runtime's after-restore hooks and
// the invocation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace ember::snapshot {

// Page-aligned addresses in `pid`'s address space that are backed by the file `image_path` and
// present. `proc_root` is injectable for tests ("/proc").
Result<std::vector<uint64_t>> RecordWorkingSet(pid_t pid, const std::string& image_path,
                                               const std::string& proc_root = "/proc");

}  // namespace ember::snapshot
