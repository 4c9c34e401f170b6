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
// that are no longer the file's (pagemap bit 61 clear: copied on write); then FillSmallGaps.
// Shared file mappings, the vDSO areas and MADV_DONTDUMP areas store nothing.
Status CaptureContents(pid_t pid, int mem_fd, std::vector<MemoryArea>& areas);

// The most unstored pages of an anonymous area that FillSmallGaps stores as zeros to join two
// stored runs (or a run and the area's edge): the restorer maps each run with one mmap, and on
// this machine kind (a PVM guest) a mapping change costs more than 32 KiB of zeros in the
// shared page cache of the image (a Python instance: 45 runs become 15 for 60 more pages).
inline constexpr uint32_t kMaxFilledGapPages = 8;

// Stores the gaps of at most kMaxFilledGapPages pages between an anonymous area's stored pages,
// and before the first and after the last, as zero pages: a zero page restored from the image
// reads, writes and DONTNEEDs as an untouched anonymous page does. Other kinds of area are left
// alone (a file mapping's gap shows the file, a stack's is copied). Pure; unit-tested.
void FillSmallGaps(MemoryArea& area);

// Reads [start, end) of the tracee through `mem_fd`.
Result<std::vector<uint8_t>> ReadMemory(int mem_fd, uint64_t start, uint64_t end);

}  // namespace ember::snapshot
