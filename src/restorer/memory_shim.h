// The memory shim: makes memory that the restorer mapped MAP_PRIVATE from the snapshot image
// ("overlay memory": the page cache is the shared base, only written pages are private) behave
// like the anonymous memory it was at checkpoint, where the two differ (and the process's
// copies of a private file mapping's pages, restored the same way, like that file mapping:
// FileOrigin below):
//
//   * madvise(MADV_DONTNEED / MADV_DONTNEED_LOCKED / MADV_FREE / MADV_GUARD_INSTALL) must leave
//     zero pages behind; on a private file mapping the image's bytes come back instead (and
//     MADV_FREE fails with EINVAL). Allocators that trust DONTNEED to zero (glibc's calloc after
//     a heap trim, jemalloc, mimalloc) would hand out garbage.
//   * mremap growing such a mapping must add zero pages; on a file mapping it maps further image
//     bytes, or pages past the end of the file that raise SIGBUS when touched.
//   * MADV_WIPEONFORK is refused on file mappings; MADV_REMOVE gives EACCES instead of the
//     EINVAL anonymous memory gives.
//
// How: a seccomp filter (memory_shim_filter.h) traps those calls (SIGSYS) when their range
// overlaps a place that held image-backed memory at install time and they come from the
// process's code (executable mappings at install time; the places come from the restorer,
// which knows what it mapped, or from /proc/self/maps), and the shim's SIGSYS handler first
// makes every image-backed part of the range what it was at checkpoint: anonymous — fresh zero
// pages with the same protection where the advice throws the contents away anyway, a copy
// where they must survive (mremap, WIPEONFORK) — or, in a FileOrigin area, a private mapping of
// that file (its pages for DONTNEED, with the image's bytes copied in for mremap) — then
// issues the real call from its own syscall instruction (which the
// filter lets through) and returns the kernel's answer to the trapped code. MADV_REMOVE over
// image-backed memory returns EINVAL without touching anything. An mremap range that was one
// anonymous mapping at checkpoint (the restorer maps it as anonymous memory with image runs on
// top, and DONTNEED conversions cut it further) is copied into one anonymous mapping, as mremap
// needs. Which mappings are image-backed is read from /proc/self/maps on each trap (device and
// inode of the image file; PROCMAP_QUERY on 6.11+, the text before).
//
// Costs, measured here: a trapped DONTNEED of one page ~16 us (signal ~4, maps query ~4, the
// zero mapping ~5), against ~5 us untrapped; on a kernel without PROCMAP_QUERY ~45 us (the maps
// text). Memory once converted stays where the filter watches, so later DONTNEEDs there still
// trap. Image-backed memory that nothing madvises or mremaps never costs a trap; calls on other
// memory cost a few BPF instructions.
//
// The handler is freestanding (raw syscalls, no allocation, no locks) and reentrant: threads may
// trap at the same time. It runs on the trapping thread's stack and needs about 3.5 KiB of it,
// on top of the signal frame (~3 KiB with AVX-512 state).
//
// What the restorer must do around InstallMemoryShim, in this order:
//   1. map the image's memory (every image mapping must exist when the shim is installed: the
//      filter only watches the places they had then, and nothing may map the image later);
//   2. restore the process's signal actions (the shim takes SIGSYS over and forwards SIGSYS
//      that is not its own to the restored SIGSYS action, see below);
//   3. set no_new_privs (the filter needs it; root without it also works via CAP_SYS_ADMIN);
//   4. InstallMemoryShim, in the only thread: the filter is installed without TSYNC, so threads
//      created afterwards inherit it and threads that exist already do not;
//   5. create the threads, jump to the process.
// The restorer's own text, data and bss must stay mapped for the life of the process (the
// handler, its rt_sigreturn trampoline and the shim's state live there).
//
// Assumptions and limits:
//   * Every private mapping of the image is memory that was anonymous at checkpoint, except
//     inside the FileOrigin areas the installer names: there it was a private mapping of that
//     file (DONTNEED brings the file's bytes back, see FileOrigin).
//   * SIGSYS must not be blocked in a thread that makes a trapped call: the kernel then resets
//     SIGSYS to its default action and kills the process (as for any seccomp trap). glibc 2.36
//     does not block it around its own madvise calls (heap trim, thread stack release). A vfork
//     child (Python's subprocess, posix_spawn) blocks every signal, but between vfork and exec
//     it only reads and resets signal actions and execs: no madvise/mremap.
//   * rt_sigaction(SIGSYS) is not trapped (a trap would kill that vfork child, which resets
//     SIGSYS with it while every signal is blocked): it reaches the kernel. A query reads the
//     shim's handler; a vfork or fork child that resets SIGSYS changes only its own copy of the
//     actions. A process that sets its own SIGSYS action after restore replaces the shim's
//     handler: from then on a trapped madvise/mremap on image memory is not made and goes to
//     that action instead — a handler sees SIGSYS with si_code SYS_SECCOMP, si_errno
//     kShimTrapData (memory_shim_filter.h) and the call's registers, and whatever it leaves in
//     rax is the call's result; SIG_DFL or SIG_IGN kill the process with SIGSYS. Python itself
//     never sets a SIGSYS action (its signal module handles SIGINT, and sets SIGPIPE and SIGXFSZ
//     to SIG_IGN).
//   * While the shim's handler is installed, a SIGSYS that is not the shim's (another filter's
//     trap, kill, tgkill) goes to the action the process had at install time (restored from
//     the image): SIG_DFL re-raises it with the default action (the process dies with SIGSYS,
//     as it would have), SIG_IGN ignores a sent SIGSYS (a seccomp trap still kills, as the
//     kernel would), and a handler is called with the same siginfo and ucontext (its changes to
//     the registers take effect), on the current stack (SA_ONSTACK is not honoured), with
//     SIGSYS unblocked so that a trapped call inside it still reaches the shim (a second
//     foreign SIGSYS nests). SA_RESETHAND resets that kept action to SIG_DFL after one call.
//   * The filter survives execve, the handler does not. Calls are trapped only from where the
//     process's code was at install time, so a program it executes (its libc placed elsewhere
//     by ASLR) is not trapped: tested with python. At risk: a program whose code lands where
//     the restored process had code (ASLR disabled, a non-PIE binary at the restored one's
//     fixed address) — its trapped calls would kill it with SIGSYS.
//   * Code mapped after the install (a module dlopen'ed later, JIT code) that issues madvise or
//     mremap itself instead of through libc's wrappers is not trapped: on image-backed memory
//     its DONTNEED shows image bytes. Calls through libc (malloc, free, realloc, Python's
//     mmap module) come from libc's code and are trapped.
//   * Converted mappings lose VMA attributes other than protection (mlock, madvise hints,
//     userfaultfd registration, MADV_DONTFORK): the restorer sets none of these on image
//     mappings. Converting also costs a VMA split each time; if the process is at
//     vm.max_map_count the call fails with ENOMEM.
//   * The conversion and the real call are not one atomic step: another thread writing to the
//     memory a call mremaps while the shim copies it can lose its write (a program that does
//     that races with the mremap itself anyway).
//   * If /proc/self/maps cannot be read (no /proc for the process's pid namespace, no free fd)
//     the trapped call is not made: madvise fails with EAGAIN, mremap with ENOMEM. The
//     sandbox's seccomp policy must allow openat, read, close, mmap, mprotect, munmap, mremap,
//     madvise, rt_sigaction, rt_sigprocmask, rt_tgsigqueueinfo, tgkill, getpid, gettid and
//     rt_sigreturn; and ioctl PROCMAP_QUERY (0xc0686611) for the fast path — refused, the
//     shim reads the text instead (~45 us a trap instead of ~16).
//   * madvise reached through io_uring or process_madvise is not seen (the sandbox denies both).
#pragma once

#include <stdint.h>

#include "restorer/memory_shim_filter.h"

namespace ember::restorer {

// An area that was a private file mapping at checkpoint and whose stored pages (the process's
// copies of file pages) the restorer mapped from the image on top of the file: there DONTNEED
// (and DONTNEED_LOCKED, GUARD_INSTALL) must bring back the file's bytes, not zeros, and the
// advices a private file mapping refuses (FREE, WIPEONFORK, REMOVE) are refused by the kernel
// as they were at checkpoint. An mremap that must convert such memory makes it a private
// mapping of that file again, with the image's bytes copied where they differ.
inline constexpr int kMaxFileOrigins = 256;  // what the restorer records; past it, it copies
struct FileOrigin {
  uint64_t start;  // the area, page aligned, end exclusive
  uint64_t end;
  uint64_t file_offset;  // of `start` in the file
  const char* path;      // absolute; must stay readable for the life of the process (the plan)
};

struct MemoryShimConfig {
  // stat(2) of the image file: st_dev as stat returns it (new_encode_dev layout; the shim
  // compares its major and minor with /proc/self/maps) and st_ino.
  uint64_t image_dev;
  uint64_t image_ino;
  // Where the caller mapped the image privately and where the process's code is, each sorted
  // and disjoint (at most kMaxShimRanges and kMaxShimCodeRanges, memory_shim_filter.h): the
  // restorer knows both from its plan. Null: both are read from /proc/self/maps (one
  // PROCMAP_QUERY per mapping, ~0.2 ms for a Python process).
  const AddressRange* image_ranges = nullptr;
  int image_range_count = 0;
  const AddressRange* code_ranges = nullptr;
  int code_range_count = 0;
  // The image mappings that were file-backed, sorted by start, disjoint; the shim keeps the
  // pointer (the table must live as long as the process). Memory outside them is taken to have
  // been anonymous.
  const FileOrigin* file_origins = nullptr;
  int file_origin_count = 0;
};

// Installs the shim for the calling thread (and the threads it creates later). Returns 0 or
// -errno: -EBUSY (already installed), -ENOENT (no private mapping of the image: the dev/ino
// are wrong, nothing is mapped yet, or no image range was given), -EINVAL (too many or unsorted
// ranges given), -EAGAIN-style errors of reading maps, or the errors of rt_sigaction and
// seccomp (-EACCES: no no_new_privs and no CAP_SYS_ADMIN). On failure nothing is installed and
// SIGSYS keeps its action.
int InstallMemoryShim(const MemoryShimConfig& config);

// How many calls the shim has handled since it was installed (all threads; a fork inherits the
// count). For tests and for the restorer's diagnostics.
uint64_t MemoryShimTrapCount();

}  // namespace ember::restorer
