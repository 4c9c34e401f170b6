// The address space: which areas there are (maps + smaps), what each is (anonymous, private or
// shared file mapping, stack, vDSO), and the contents of the pages that a fresh mapping of the
// area would not show (pagemap tells which).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "snapshot/proc_parsers.h"
#include "snapshot/process_state.h"
#include "snapshot/root_path.h"

namespace ember::snapshot {

// Classifies the areas, without contents or file checks. Refuses, naming the area, what ember
// cannot restore: shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, memfd, SysV shm), files
// deleted since they were mapped, device memory (VM_IO/VM_PFNMAP), kernel areas it does not
// know. [vsyscall] is left out (it is the same fixed page in every process). Pure; unit-tested.
Result<std::vector<MemoryArea>> PlanAreas(const std::vector<proc::MapsEntry>& maps,
                                          const std::map<uint64_t, proc::VmFlags>& flags);

// Checks that every file-backed area's path, looked up under `root`, is the mapped file (the
// maps line's device and inode), and records the file's dev/inode.
Status ResolveAreaFiles(const SandboxRoot& root, const std::vector<proc::MapsEntry>& maps,
                        std::vector<MemoryArea>& areas);

// Fills pages/page_data from /proc/PID/pagemap and `mem_fd` (/proc/PID/mem): present or
// swapped pages of anonymous areas and stacks unless all zero; pages of private file mappings
// that are no longer the file's (pagemap bit 61 clear: copied on write). Shared file mappings,
// the vDSO areas and MADV_DONTDUMP areas store nothing.
Status CaptureContents(pid_t pid, int mem_fd, std::vector<MemoryArea>& areas);

// Reads [start, end) of the tracee through `mem_fd`.
Result<std::vector<uint8_t>> ReadMemory(int mem_fd, uint64_t start, uint64_t end);

}  // namespace ember::snapshot
