// The state of a quiesced process as the checkpointer captures it, before it is laid out on disk.
// This is the seam between the two halves of the snapshot engine:
//   checkpoint (ptrace + /proc + injected syscalls)  ->  ProcessState  ->  image writer (one file)
// and, on the way back, the image reader hands the restorer fixed records (format.h) that carry
// the same information without parsing. Keep this model plain data: no fds, no pointers into the
// traced process, nothing that needs the process to still exist.
//
// Units: addresses and sizes in bytes; page size 4096 (x86-64 only; the compat record says so).
#pragma once

#include <signal.h>
#include <sys/user.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ember::snapshot {

inline constexpr uint64_t kPageSize = 4096;

// What must match between the host that checkpointed and the host that restores; restore on a
// mismatch is refused naming the field (the vDSO must be byte-identical, the xsave layout the
// same, glibc the same build since its data is in the image).
struct CompatRecord {
  std::string kernel_release;  // uname -r
  uint64_t vdso_hash = 0;      // xxh64 of the [vdso] bytes
  uint64_t vdso_size = 0;
  uint32_t cpuid_1_ecx = 0, cpuid_1_edx = 0;                   // leaf 1 feature bits
  uint32_t cpuid_7_ebx = 0, cpuid_7_ecx = 0, cpuid_7_edx = 0;  // leaf 7 subleaf 0
  uint64_t xcr0 = 0;                                           // xsave feature mask
  uint32_t xsave_size = 0;                                     // bytes of the xsave area
  std::string glibc_version;  // LibcIdentity of the libc the process runs (the image's)
  std::string ember_version;  // EMBER_VERSION
};

// One thread. Registers come from PTRACE_GETREGS / PTRACE_GETREGSET(NT_X86_XSTATE); the rest
// from injected syscalls (sigaltstack, set_tid_address is unreadable so clear_child_tid comes
// from /proc or injection), PTRACE_GET_RSEQ_CONFIGURATION and get_robust_list.
struct ThreadState {
  pid_t tid = 0;               // as seen in the process's own pid namespace
  user_regs_struct regs{};     // with rip/rax already rewound if a syscall must restart
  std::vector<uint8_t> xsave;  // NT_X86_XSTATE, xsave_size bytes
  uint64_t fs_base = 0, gs_base = 0;
  uint64_t sigmask = 0;  // blocked signals, bit n-1 = signal n
  uint64_t altstack_sp = 0, altstack_size = 0;
  int32_t altstack_flags = SS_DISABLE;
  uint64_t clear_child_tid = 0;
  uint64_t robust_list = 0, robust_list_len = 0;
  uint64_t rseq_addr = 0;  // 0 = not registered
  uint32_t rseq_len = 0, rseq_sig = 0;
  bool restart_syscall = false;  // was inside an interruptible syscall; regs rewound to redo it
};

enum class AreaKind : uint8_t {
  kAnonymous,    // private anonymous (includes [heap])
  kFilePrivate,  // private mapping of a file: unmodified pages come from the file
  kFileShared,   // shared mapping of a file (contents stay in the file, never stored)
  kStack,        // the main thread's [stack] (grows down; restored as a growable anon mapping)
  kVdso,         // [vdso], [vvar], [vvar_vclock]: moved into place, never stored
  kVvar,
  kVvarVclock,
};

// One VMA from /proc/pid/maps (+ smaps for flags). Page contents are stored only for pages that
// differ from what mapping the area afresh would show: present anonymous pages that are not all
// zero, and the copied-on-write pages of private file mappings (pagemap bit 61 clear).
struct MemoryArea {
  uint64_t start = 0, end = 0;  // page aligned, end exclusive
  int32_t prot = 0;             // PROT_*
  int32_t flags = 0;            // MAP_PRIVATE / MAP_SHARED | MAP_GROWSDOWN ...
  AreaKind kind = AreaKind::kAnonymous;
  std::string path;  // file-backed areas: path inside the sandbox's root
  uint64_t file_offset = 0;
  uint64_t dev = 0, inode = 0;  // to detect a file that changed since checkpoint
  bool dontdump = false;        // MADV_DONTDUMP (VM_DONTDUMP): contents not stored
  // Stored pages: sorted page indexes relative to start, and their bytes in the same order
  // (page_data.size() == pages.size() * kPageSize).
  std::vector<uint32_t> pages;
  std::vector<uint8_t> page_data;
};

// sigaction for signals 1..64 (index n-1), as rt_sigaction returns it.
struct SignalAction {
  uint64_t handler = 0;  // SIG_DFL = 0, SIG_IGN = 1, or an address
  uint64_t flags = 0;    // SA_*
  uint64_t restorer = 0;
  uint64_t mask = 0;
};

enum class FileKind : uint8_t {
  kRegular,  // reopened by path on first use (on-demand I/O reconnection)
  kDirectory,
  kControlChannel,  // the agent's inherited control socket: reconnected eagerly at restore
  kDevice,  // /dev/null, /dev/zero, /dev/urandom ... (character devices of the minimal /dev)
  kPipe,    // only the log pipe on fds 1/2: reconnected to the new instance's log
};

struct FileDescriptor {
  int32_t fd = 0;
  FileKind kind = FileKind::kRegular;
  std::string path;        // inside the sandbox's root
  int32_t open_flags = 0;  // O_* from fdinfo "flags" (octal), without O_CREAT/O_TRUNC/O_EXCL
  bool cloexec = false;
  uint64_t offset = 0;  // fdinfo "pos"
  uint64_t dev = 0, inode = 0;
};

// Interval timers (setitimer) and POSIX timers (/proc/pid/timers); values are relative.
struct IntervalTimer {
  int32_t which = 0;  // ITIMER_REAL / ITIMER_VIRTUAL / ITIMER_PROF
  uint64_t interval_ns = 0, value_ns = 0;
};
struct PosixTimer {
  int32_t id = 0, clock_id = 0, signal = 0, notify = 0;  // notify: SIGEV_*
  uint64_t sigev_value = 0;
  uint64_t interval_ns = 0, value_ns = 0;
  int32_t notify_tid = 0;  // for SIGEV_THREAD_ID
};

// The mm bounds prctl(PR_SET_MM, PR_SET_MM_MAP) takes, plus the auxiliary vector.
struct MmBounds {
  uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  uint64_t start_brk = 0, brk = 0, start_stack = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  std::vector<uint64_t> auxv;  // key/value pairs, terminated by AT_NULL
};

struct Rlimit {
  uint64_t cur = 0, max = 0;
};

// CLOCK_MONOTONIC and CLOCK_BOOTTIME as the process saw them when it was frozen (ns).
struct CheckpointClocks {
  uint64_t monotonic_ns = 0, boottime_ns = 0;  // 0 = not recorded
};

struct ProcessState {
  CompatRecord compat;
  pid_t pid = 0;                     // in its own pid namespace (1 for an instance's agent)
  std::vector<ThreadState> threads;  // threads[0] is the thread-group leader
  std::vector<MemoryArea> areas;     // sorted by start, non-overlapping
  std::array<SignalAction, 64> signals{};
  uint64_t pending_signals = 0;  // process-wide; checkpoint refuses if non-zero
  MmBounds mm;
  std::array<Rlimit, 16> rlimits{};  // RLIMIT_* order (RLIM_NLIMITS = 16)
  std::string cwd;                   // inside the sandbox's root
  std::string exe;                   // /proc/pid/exe target inside the sandbox's root
  std::vector<FileDescriptor> files;
  std::vector<IntervalTimer> itimers;
  std::vector<PosixTimer> posix_timers;
  uint32_t umask = 022;
  CheckpointClocks clocks;
  // Pages (area start + index * kPageSize) touched by the first invocation after a restore;
  // filled in later by the working-set recorder, empty at checkpoint.
  std::vector<uint64_t> working_set;
};

}  // namespace ember::snapshot
