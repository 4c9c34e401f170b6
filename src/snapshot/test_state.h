// A synthetic ProcessState for the snapshot format's tests and the fuzzer's seeds: every field
// set to a distinct value, so a round trip that loses or swaps one shows up.
#pragma once

#include <sys/mman.h>

#include <cstdint>

#include "snapshot/process_state.h"

namespace ember::snapshot::testing {

// `stored` pages per area at indexes 0, 1, 3 (two runs), ...; threads, files and timers as asked.
inline ProcessState SyntheticState(int threads = 3, int areas = 4, int files = 3) {
  ProcessState s;
  s.compat = {"6.1.0-18-amd64", 0x1234abcd5678ef00, 8192,  0x7ffafbff, 0xbfebfbff, 0x9c6fbf,
              0x40000004,       0xfc000400,         0x2e7, 2696,       "2.36",     "0.1.0"};
  s.pid = 1;
  for (int i = 0; i < threads; ++i) {
    ThreadState t;
    t.tid = 1 + i;
    t.regs.rip = 0x401000 + i;
    t.regs.rsp = 0x7ffd0000 - 0x100 * i;
    t.regs.rax = 0xa0 + i;
    t.regs.orig_rax = 0xffffffffffffffff;
    t.regs.fs_base = 0x7f0000001000 + i;
    t.xsave.assign(576 + 64 * i, 0);
    for (size_t b = 0; b < t.xsave.size(); ++b) t.xsave[b] = static_cast<uint8_t>(b * 7 + i);
    t.fs_base = 0x7f0000001000 + i;
    t.gs_base = 0x10 * i;
    t.sigmask = 0x1000 + i;
    t.altstack_sp = i == 1 ? 0x7f0000100000 : 0;
    t.altstack_size = i == 1 ? 65536 : 0;
    t.altstack_flags = i == 1 ? 0 : 2;
    t.clear_child_tid = 0x7f0000002000 + i;
    t.robust_list = 0x7f0000003000 + i;
    t.robust_list_len = 24;
    t.rseq_addr = 0x7f0000004000 + 0x20 * i;
    t.rseq_len = 32;
    t.rseq_sig = 0x53053053;
    t.restart_syscall = i == 2;
    s.threads.push_back(std::move(t));
  }
  const AreaKind kinds[] = {AreaKind::kFilePrivate, AreaKind::kAnonymous, AreaKind::kStack,
                            AreaKind::kVdso, AreaKind::kFileShared};
  for (int i = 0; i < areas; ++i) {
    MemoryArea a;
    a.start = 0x400000 + uint64_t(i) * 0x100000;
    a.end = a.start + 8 * kPageSize;
    a.prot = PROT_READ | (i % 2 == 1 ? PROT_WRITE : PROT_EXEC);
    a.flags = MAP_PRIVATE;
    a.kind = kinds[i % 5];
    if (a.kind == AreaKind::kFilePrivate) a.path = "/usr/lib/libarea" + std::to_string(i) + ".so";
    a.file_offset = 0x1000 * i;
    a.dev = 0x801;
    a.inode = 1000 + i;
    a.dontdump = i == 3;
    if (i != 3) a.pages = {0, 1, 3};  // two runs; area 3 stores nothing
    if (i == 1) a.pages = {2, 3, 4, 5, 7};
    for (uint32_t page : a.pages) {
      for (uint64_t b = 0; b < kPageSize; ++b) {
        a.page_data.push_back(static_cast<uint8_t>(page * 31 + i * 17 + b));
      }
    }
    s.areas.push_back(std::move(a));
  }
  for (int i = 1; i <= 64; ++i) {
    if (i % 5 == 0) s.signals[i - 1] = {0x402000 + uint64_t(i), 0x4000000, 0x403000, uint64_t(i)};
  }
  s.signals[12] = {1, 0, 0, 0};  // SIGPIPE ignored
  s.pending_signals = 0;
  s.mm = {0x400000,   0x401000,   0x500000,   0x501000,   0x600000,   0x621000,
          0x7ffd1000, 0x7ffd2000, 0x7ffd2100, 0x7ffd2100, 0x7ffd2200, {3, 0x400040, 6, 4096, 0, 0}};
  for (size_t i = 0; i < s.rlimits.size(); ++i) s.rlimits[i] = {1000 + i, 2000 + i};
  s.cwd = "/srv/app";
  s.exe = "/usr/bin/python3.11";
  const FileKind fkinds[] = {FileKind::kDevice, FileKind::kPipe, FileKind::kRegular,
                             FileKind::kControlChannel, FileKind::kDirectory};
  for (int i = 0; i < files; ++i) {
    FileDescriptor f;
    f.fd = i;
    f.kind = fkinds[i % 5];
    f.path = i == 3 ? "" : "/srv/app/file" + std::to_string(i);
    f.open_flags = 02 | (i << 10);
    f.cloexec = i % 2 == 0;
    f.offset = 100 * i;
    f.dev = 0x802;
    f.inode = 5000 + i;
    s.files.push_back(f);
  }
  s.itimers = {{0, 1000000, 2000000}, {2, 0, 5000}};
  s.posix_timers = {{0, 1, 14, 0, 0xdead, 100, 200, 0}, {1, 0, 10, 4, 0xbeef, 0, 300, 2}};
  s.umask = 027;
  s.clocks = {.monotonic_ns = 54038123456789, .boottime_ns = 54100987654321};
  s.working_set = {0x400000, 0x401000, 0x500000};
  return s;
}

}  // namespace ember::snapshot::testing
