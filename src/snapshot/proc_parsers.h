// Pure parsers for the /proc files the checkpointer reads: maps, smaps (VmFlags), stat (mm
// bounds), status (umask, signal sets, NSpid), fdinfo, timers and the socket tables of
// /proc/PID/net. They take the file's text and never touch the system, so every format quirk of
// this kernel is pinned by a unit test with real lines (proc_parsers_test.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "snapshot/process_state.h"

namespace ember::snapshot::proc {

// One line of /proc/PID/maps:
//   7ff85fbe6000-7ff85fc0c000 r--p 00000000 fe:00 332835   /usr/lib/x86_64-linux-gnu/libc.so.6
struct MapsEntry {
  uint64_t start = 0, end = 0;
  int prot = 0;  // PROT_READ | PROT_WRITE | PROT_EXEC
  bool shared = false;
  uint64_t offset = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string path;  // "" (anonymous), "[heap]", "[stack]", "[vdso]", a path, "... (deleted)"
};
Result<std::vector<MapsEntry>> ParseMaps(std::string_view text);

// The VmFlags line of each smaps entry, keyed by the area's start address.
struct VmFlags {
  bool shared = false;     // sh
  bool growsdown = false;  // gd
  bool dontdump = false;   // dd
  bool io = false;         // io: device memory (VM_IO)
  bool pfnmap = false;     // pf: raw page frames, no struct page (VM_PFNMAP)
};
Result<std::map<uint64_t, VmFlags>> ParseSmapsVmFlags(std::string_view text);

// /proc/PID/stat: the mm bounds (fields 26-28 and 45-51) and the state letter. auxv and the
// current brk are not in it (brk there is start_brk; the current one needs brk(0)).
struct StatFields {
  char state = '?';
  MmBounds mm;
};
Result<StatFields> ParseStat(std::string_view text);

// /proc/PID[/task/TID]/status: the fields the checkpointer needs.
struct StatusFields {
  uint32_t umask = 022;
  uint64_t sig_pnd = 0;  // pending for this thread
  uint64_t shd_pnd = 0;  // pending for the whole process
  uint64_t sig_blk = 0;
  std::vector<pid_t> ns_pid;  // NSpid: outermost (the reader's) first, innermost last
  int threads = 0;
};
Result<StatusFields> ParseStatus(std::string_view text);

// /proc/PID/fdinfo/N (the common lines; kind-specific lines are ignored).
struct FdInfo {
  uint64_t pos = 0;
  int flags = 0;  // O_*, printed in octal
  int mnt_id = 0;
  uint64_t ino = 0;
};
Result<FdInfo> ParseFdinfo(std::string_view text);

// One POSIX timer of /proc/PID/timers. Its current value is not there: timer_gettime gives it.
struct TimerInfo {
  int id = 0;
  int signal = 0;
  uint64_t sigev_value = 0;
  int notify = 0;        // SIGEV_SIGNAL / SIGEV_NONE / SIGEV_THREAD, | SIGEV_THREAD_ID for "tid"
  pid_t notify_pid = 0;  // in the pid namespace of the /proc that was read
  int clock_id = 0;
};
Result<std::vector<TimerInfo>> ParseTimers(std::string_view text);

// The socket tables of /proc/PID/net (the process's network namespace). Describes the socket
// with `inode` for a refusal ("TCP socket 127.0.0.1:8080 -> 0.0.0.0:0 LISTEN"), or "" if the
// table does not list it. `table` is the file name: unix, tcp, tcp6, udp, udp6, raw, raw6,
// netlink, packet.
std::string DescribeSocket(std::string_view table, std::string_view text, uint64_t inode);

// "SIGUSR1", "SIGRTMIN+3": for refusals that name a signal.
std::string SignalName(int sig);
// The lowest-numbered signal in a set (bit n-1 = signal n), 0 if empty.
int FirstSignal(uint64_t set);

}  // namespace ember::snapshot::proc
