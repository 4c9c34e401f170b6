// Checkpoint of live processes: the zdtm-style programs of tests/zdtm (each sets up one kind of
// state, reports its own view of it on a "ready key=value ..." line, and blocks in read() on
// its control socket) and a real python3.11. Each test compares what Checkpoint captured with
// what the program reported, then lets the program check that it still runs correctly after
// the checkpointer detached (one byte on the control socket; it answers "ok").
#include "snapshot/checkpoint.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "integration/zdtm_program.h"
#include "snapshot/compat.h"
#include "snapshot/compat_capture.h"
#include "snapshot/image_reader.h"
#include "snapshot/image_writer.h"
#include "util/fixtures.h"

namespace ember::snapshot {
namespace {

using ember::testing::TempDir;
using namespace ember::snapshot::zdtm;  // NOLINT(google-build-using-namespace)

TEST_F(CheckpointTest, MemoryRegistersAndProcessState) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("memory")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  ExpectBlockedInRead(*state, p.pid());
  EXPECT_EQ(state->pid, p.pid());
  ASSERT_EQ(state->threads.size(), 1u);

  // The heap block (malloc'd, pattern i % 251) is stored page by page.
  uint64_t heap = p.Num("heap");
  const MemoryArea* heap_area = AreaAt(*state, heap);
  ASSERT_NE(heap_area, nullptr);
  EXPECT_EQ(heap_area->kind, AreaKind::kAnonymous);
  uint64_t probe = (heap + 3 * kPageSize) & ~(kPageSize - 1);
  const uint8_t* page = StoredPage(*heap_area, probe);
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page[100], static_cast<uint8_t>((probe + 100 - heap) % 251));

  // The big mapping: even pages hold a pattern, odd pages are zero or untouched: not stored
  // for themselves, but as zero pages where they join two stored runs (FillSmallGaps).
  uint64_t big = p.Num("mmap");
  const MemoryArea* big_area = AreaAt(*state, big);
  ASSERT_NE(big_area, nullptr);
  EXPECT_LE(big_area->end, AreaAt(*state, big + p.Num("mmap_len") - 1)->end);
  for (uint64_t pg : {0, 2, 100, 4094}) {
    const uint8_t* stored = StoredPage(*big_area, big + pg * kPageSize);
    ASSERT_NE(stored, nullptr) << "page " << pg;
    EXPECT_EQ(stored[7], static_cast<uint8_t>(pg * 31 + 7));
  }
  for (uint64_t pg : {1, 3, 101, 4095}) {
    const uint8_t* stored = StoredPage(*big_area, big + pg * kPageSize);
    if (stored == nullptr) continue;
    EXPECT_EQ(std::count(stored, stored + kPageSize, 0), static_cast<long>(kPageSize))
        << "page " << pg;
  }
  // A PROT_NONE page with data is still captured (read with FOLL_FORCE through /proc/PID/mem).
  const MemoryArea* hidden = AreaAt(*state, p.Num("hidden"));
  ASSERT_NE(hidden, nullptr);
  EXPECT_EQ(hidden->prot, 0);
  const uint8_t* hidden_page = StoredPage(*hidden, p.Num("hidden"));
  ASSERT_NE(hidden_page, nullptr);
  EXPECT_EQ(hidden_page[100], 0x5a);

  // Kernel areas and the stack.
  int vdso = 0, stack = 0;
  for (const MemoryArea& a : state->areas) {
    if (a.kind == AreaKind::kVdso) {
      ++vdso;
      EXPECT_TRUE(a.pages.empty());
    }
    if (a.kind == AreaKind::kStack) {
      ++stack;
      EXPECT_TRUE(a.flags & MAP_GROWSDOWN);
      EXPECT_NE(AreaAt(*state, state->threads[0].regs.rsp), nullptr);
      EXPECT_FALSE(a.pages.empty());
    }
  }
  EXPECT_EQ(vdso, 1);
  EXPECT_EQ(stack, 1);
  EXPECT_TRUE(
      std::is_sorted(state->areas.begin(), state->areas.end(),
                     [](const MemoryArea& a, const MemoryArea& b) { return a.start < b.start; }));

  // mm bounds, auxv, brk, rlimits, cwd, exe, umask.
  const MmBounds& mm = state->mm;
  EXPECT_LT(mm.start_code, mm.end_code);
  EXPECT_GE(mm.brk, mm.start_brk);
  EXPECT_LT(mm.arg_start, mm.arg_end);
  EXPECT_NE(AreaAt(*state, mm.arg_start), nullptr);
  ASSERT_GE(mm.auxv.size(), 4u);
  EXPECT_EQ(mm.auxv[mm.auxv.size() - 2], 0u);  // AT_NULL last
  bool pagesz = false;
  for (size_t i = 0; i + 1 < mm.auxv.size(); i += 2)
    pagesz |= mm.auxv[i] == 6 && mm.auxv[i + 1] == 4096;
  EXPECT_TRUE(pagesz);
  rlimit nofile;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  EXPECT_EQ(state->rlimits[RLIMIT_NOFILE].cur, nofile.rlim_cur);
  EXPECT_EQ(state->rlimits[RLIMIT_NOFILE].max, nofile.rlim_max);
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(state->cwd, cwd);
  char exe[4096];
  ASSERT_NE(::realpath(Zdtm("memory").c_str(), exe), nullptr);
  EXPECT_EQ(state->exe, exe);
  mode_t mask = ::umask(022);
  ::umask(mask);
  EXPECT_EQ(state->umask, mask);

  // Files: the control socket, the log pipe on 1 and 2, nothing else.
  ASSERT_EQ(state->files.size(), 3u);
  EXPECT_EQ(state->files[0].kind, FileKind::kControlChannel);
  EXPECT_EQ(state->files[1].kind, FileKind::kPipe);
  EXPECT_EQ(state->files[2].kind, FileKind::kPipe);

  // Compat record.
  utsname uts;
  ASSERT_EQ(::uname(&uts), 0);
  EXPECT_EQ(state->compat.kernel_release, uts.release);
  EXPECT_NE(state->compat.vdso_hash, 0u);
  EXPECT_GT(state->compat.vdso_size, 0u);
  EXPECT_NE(state->compat.xcr0 & 3, 0u);  // x87 and SSE at least
  EXPECT_GE(state->compat.xsave_size, 576u);
  EXPECT_EQ(state->threads[0].xsave.size(), state->compat.xsave_size);
  EXPECT_EQ(state->compat.glibc_version, "");  // static: no libc.so.6 mapped
  EXPECT_EQ(state->compat.ember_version, EMBER_VERSION);

  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, AllThreadsWithTlsRseqRobustListAndClearTid) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("threads")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  ExpectBlockedInRead(*state, p.pid());
  ASSERT_EQ(state->threads.size(), 5u);
  std::string tids = p.Get("tids"), tls = p.Get("tls");
  std::vector<uint64_t> fs_bases;
  for (const ThreadState& t : state->threads) {
    fs_bases.push_back(t.fs_base);
    EXPECT_EQ(t.fs_base, t.regs.fs_base);
    EXPECT_NE(t.rseq_addr, 0u) << "glibc registers rseq for every thread";
    EXPECT_EQ(t.rseq_sig, 0x53053053u);
    EXPECT_NE(t.robust_list, 0u);
    EXPECT_NE(t.clear_child_tid, 0u);
    EXPECT_FALSE(t.xsave.empty());
  }
  std::sort(fs_bases.begin(), fs_bases.end());
  EXPECT_EQ(std::unique(fs_bases.begin(), fs_bases.end()), fs_bases.end());
  for (size_t i = 1; i < state->threads.size(); ++i) {
    const ThreadState& t = state->threads[i];
    // Workers wait in futex(): an interrupted syscall, rewound.
    EXPECT_TRUE(t.restart_syscall);
    EXPECT_EQ(t.regs.orig_rax, static_cast<uint64_t>(SYS_futex));
    EXPECT_NE(tids.find(std::to_string(t.tid)), std::string::npos) << t.tid << " not in " << tids;
    // glibc's thread control block sits at fs_base: TLS below it (variant II), tid word and
    // robust list head inside struct pthread above it.
    EXPECT_GT(t.clear_child_tid, t.fs_base);
    EXPECT_LT(t.clear_child_tid, t.fs_base + 4096);
    EXPECT_GT(t.robust_list, t.fs_base);
    EXPECT_LT(t.robust_list, t.fs_base + 4096);
  }
  // Each worker's TLS value (1000 + index) is in the captured memory, below its fs_base.
  std::istringstream addrs(tls);
  std::string addr;
  int index = 0;
  while (std::getline(addrs, addr, ',')) {
    uint64_t a = std::strtoull(addr.c_str(), nullptr, 0);
    const MemoryArea* area = AreaAt(*state, a);
    ASSERT_NE(area, nullptr);
    const uint8_t* page = StoredPage(*area, a);
    ASSERT_NE(page, nullptr);
    long value;
    std::memcpy(&value, page + (a % kPageSize), sizeof value);
    EXPECT_EQ(value, 1000 + index);
    ++index;
  }
  EXPECT_EQ(index, 4);
  EXPECT_EQ(p.Finish(), "ok");
}

// Threads come and go while the checkpointer seizes: every checkpoint sees a consistent set and
// the process goes on spawning afterwards.
TEST_F(CheckpointTest, ThreadsCreatedDuringTheSeize) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("spawner")}));
  for (int i = 0; i < 20; ++i) {
    auto state = Capture(p);
    ASSERT_TRUE(state) << state.error().ToString();
    EXPECT_GE(state->threads.size(), 2u);
    EXPECT_LE(state->threads.size(), 3u);
    EXPECT_EQ(state->threads[0].tid, p.pid());
    for (const ThreadState& t : state->threads) EXPECT_FALSE(t.xsave.empty());
  }
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, SignalHandlersMaskAndAltStack) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("signals")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  ExpectBlockedInRead(*state, p.pid());
  const SignalAction& usr1 = state->signals[SIGUSR1 - 1];
  EXPECT_EQ(usr1.handler, p.Num("usr1_handler"));
  EXPECT_EQ(usr1.flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK),
            static_cast<uint64_t>(SA_SIGINFO | SA_RESTART | SA_ONSTACK));
  EXPECT_NE(usr1.restorer, 0u);
  EXPECT_EQ(usr1.mask, 1ULL << (SIGUSR2 - 1));
  EXPECT_EQ(state->signals[SIGTERM - 1].handler, 1u);  // SIG_IGN
  EXPECT_EQ(state->signals[SIGINT - 1].handler, 0u);   // SIG_DFL
  const ThreadState& t = state->threads[0];
  EXPECT_EQ(t.sigmask, 1ULL << (SIGINT - 1));
  EXPECT_EQ(t.altstack_sp, p.Num("altstack"));
  EXPECT_EQ(t.altstack_size, p.Num("altstack_size"));
  EXPECT_EQ(t.altstack_flags, 0);
  // The handler still runs, on the alternate stack: the injected calls changed nothing.
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, IntervalAndPosixTimers) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("timers")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  constexpr uint64_t kSec = 1000000000ULL;
  ASSERT_EQ(state->itimers.size(), 1u);
  EXPECT_EQ(state->itimers[0].which, ITIMER_REAL);
  EXPECT_EQ(state->itimers[0].interval_ns, 500 * kSec);
  EXPECT_GT(state->itimers[0].value_ns, 900 * kSec);
  EXPECT_LE(state->itimers[0].value_ns, 1000 * kSec);
  ASSERT_EQ(state->posix_timers.size(), 3u);
  std::map<int, PosixTimer> by_id;
  for (const PosixTimer& t : state->posix_timers) by_id[t.id] = t;
  const PosixTimer& t1 = by_id.at(static_cast<int>(p.Num("t1")));
  EXPECT_EQ(t1.clock_id, CLOCK_MONOTONIC);
  EXPECT_EQ(t1.signal, SIGUSR2);
  EXPECT_EQ(t1.notify, SIGEV_SIGNAL);
  EXPECT_EQ(t1.sigev_value, 0x1234u);
  EXPECT_EQ(t1.interval_ns, 7 * kSec);
  EXPECT_GT(t1.value_ns, 1900 * kSec);
  EXPECT_LE(t1.value_ns, 2000 * kSec);
  const PosixTimer& t2 = by_id.at(static_cast<int>(p.Num("t2")));
  EXPECT_EQ(t2.clock_id, CLOCK_REALTIME);
  EXPECT_EQ(t2.notify, SIGEV_NONE);
  EXPECT_GT(t2.value_ns, 2900 * kSec);
  const PosixTimer& t3 = by_id.at(static_cast<int>(p.Num("t3")));
  EXPECT_EQ(t3.clock_id, CLOCK_BOOTTIME);
  EXPECT_EQ(t3.notify, SIGEV_THREAD_ID);
  EXPECT_EQ(t3.notify_tid, p.pid());
  EXPECT_EQ(t3.signal, SIGUSR1);
  EXPECT_EQ(t3.value_ns, 0u);
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, FilesOffsetsAndFileMappings) {
  TempDir dir;
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("files"), dir.path()}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  std::map<int, FileDescriptor> fds;
  for (const FileDescriptor& f : state->files) fds[f.fd] = f;
  std::string data = p.Get("path");
  struct stat st;
  ASSERT_EQ(::stat(data.c_str(), &st), 0);
  const FileDescriptor& rw = fds.at(static_cast<int>(p.Num("rw")));
  EXPECT_EQ(rw.kind, FileKind::kRegular);
  EXPECT_EQ(rw.path, data);
  EXPECT_EQ(rw.offset, 1234u);
  EXPECT_EQ(rw.open_flags & O_ACCMODE, O_RDWR);
  EXPECT_FALSE(rw.cloexec);
  EXPECT_EQ(rw.inode, st.st_ino);
  EXPECT_EQ(rw.dev, st.st_dev);
  const FileDescriptor& ro = fds.at(static_cast<int>(p.Num("ro")));
  EXPECT_EQ(ro.offset, 5000u);
  EXPECT_EQ(ro.open_flags & O_ACCMODE, O_RDONLY);
  EXPECT_TRUE(ro.cloexec);
  const FileDescriptor& append = fds.at(static_cast<int>(p.Num("append")));
  EXPECT_TRUE(append.open_flags & O_APPEND);
  EXPECT_EQ(append.open_flags & O_ACCMODE, O_WRONLY);
  const FileDescriptor& d = fds.at(static_cast<int>(p.Num("dir")));
  EXPECT_EQ(d.kind, FileKind::kDirectory);
  EXPECT_EQ(d.path, dir.path());
  const FileDescriptor& null = fds.at(static_cast<int>(p.Num("null")));
  EXPECT_EQ(null.kind, FileKind::kDevice);
  EXPECT_EQ(null.path, "/dev/null");

  // Private mapping: only the page written (copied on write) is stored; shared: nothing.
  const MemoryArea* priv = AreaAt(*state, p.Num("priv"));
  ASSERT_NE(priv, nullptr);
  EXPECT_EQ(priv->kind, AreaKind::kFilePrivate);
  EXPECT_EQ(priv->path, data);
  EXPECT_EQ(priv->inode, st.st_ino);
  EXPECT_EQ(priv->pages, std::vector<uint32_t>{2});
  ASSERT_EQ(priv->page_data.size(), kPageSize);
  EXPECT_EQ(priv->page_data[10], 'Z');
  EXPECT_EQ(priv->page_data[11], 'c');
  const MemoryArea* shared = AreaAt(*state, p.Num("shared"));
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->kind, AreaKind::kFileShared);
  EXPECT_TRUE(shared->pages.empty());
  EXPECT_EQ(p.Finish(), "ok");
}

// A chroot'ed process: /proc shows host paths (the chroot lies below our root); the capture
// records paths inside the chroot, with the default root (/proc/PID/root) and an explicit one.
TEST_F(CheckpointTest, PathsAreRecordedInsideTheSandboxRoot) {
  TempDir dir;
  std::string root = dir.path() + "/root";
  ASSERT_TRUE(MakeDirs(root + "/bin"));
  ASSERT_TRUE(MakeDirs(root + "/work"));
  auto binary = ReadFile(Zdtm("files"));
  ASSERT_TRUE(binary);
  ASSERT_TRUE(WriteFileAtomic(root + "/bin/zdtm_files", *binary, 0755));
  for (const std::string& option : {std::string(), root}) {
    Program p;
    ASSERT_NO_FATAL_FAILURE(p.Start({"/bin/zdtm_files", "/work"}, root));
    CheckpointOptions options;
    options.root = option;
    auto state = Capture(p, options);
    ASSERT_TRUE(state) << state.error().ToString();
    EXPECT_EQ(state->exe, "/bin/zdtm_files");
    EXPECT_EQ(state->cwd, "/");
    std::map<int, FileDescriptor> fds;
    for (const FileDescriptor& f : state->files) fds[f.fd] = f;
    EXPECT_EQ(fds.at(static_cast<int>(p.Num("rw"))).path, "/work/data");
    EXPECT_EQ(fds.at(static_cast<int>(p.Num("dir"))).path, "/work");
    const MemoryArea* priv = AreaAt(*state, p.Num("priv"));
    ASSERT_NE(priv, nullptr);
    EXPECT_EQ(priv->path, "/work/data");
    EXPECT_EQ(p.Finish(), "ok");
  }
}

TEST_F(CheckpointTest, RseqAsRegisteredByGlibc) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("rseq")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  const ThreadState& t = state->threads[0];
  EXPECT_EQ(t.rseq_addr, p.Num("rseq"));
  EXPECT_GE(t.rseq_len, p.Num("rseq_size"));
  EXPECT_EQ(t.rseq_sig, p.Num("rseq_sig"));
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, RobustListAndClearChildTid) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("robust")}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  const ThreadState& t = state->threads[0];
  EXPECT_EQ(t.robust_list, p.Num("robust"));
  EXPECT_EQ(t.robust_list_len, p.Num("robust_len"));
  EXPECT_EQ(t.clear_child_tid, p.Num("clear_tid"));
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, LeaveStoppedKeepsTheProcessInAGroupStop) {
  Program p;
  ASSERT_NO_FATAL_FAILURE(p.Start({Zdtm("rseq")}));
  CheckpointOptions options;
  options.leave_stopped = true;
  auto state = Capture(p, options);
  ASSERT_TRUE(state) << state.error().ToString();
  auto stat = ReadFile("/proc/" + std::to_string(p.pid()) + "/stat");
  ASSERT_TRUE(stat);
  EXPECT_NE(stat->find(") T "), std::string::npos) << *stat;
  ASSERT_EQ(::kill(p.pid(), SIGCONT), 0);
  EXPECT_EQ(p.Finish(), "ok");
}

TEST_F(CheckpointTest, Python) {
  if (!PathExists("/usr/bin/python3.11")) GTEST_SKIP() << "no /usr/bin/python3.11";
  Program p;
  ASSERT_NO_FATAL_FAILURE(
      p.Start({"/usr/bin/python3.11", "-c",
               "import sys, json, os\nprint('ready pid=%d' % os.getpid(), flush=True)\n"
               "sys.stdin.buffer.raw.read(1)\nprint('ok', flush=True)\n"}));
  auto state = Capture(p);
  ASSERT_TRUE(state) << state.error().ToString();
  ExpectBlockedInRead(*state, p.pid());
  EXPECT_EQ(state->threads.size(), 1u);
  // Debian's python3.11 has libpython linked into the executable.
  bool python = false, libc = false;
  for (const MemoryArea& a : state->areas) {
    python |= a.path.find("python3.11") != std::string::npos ||
              a.path.find("libpython") != std::string::npos;
    libc |= a.path.find("libc.so.6") != std::string::npos;
  }
  EXPECT_TRUE(python);
  EXPECT_TRUE(libc);
  EXPECT_EQ(state->compat.glibc_version.size(), 40u)
      << state->compat.glibc_version;                 // SHA-1 build-id
  EXPECT_NE(state->signals[SIGINT - 1].handler, 0u);  // Python's KeyboardInterrupt handler
  EXPECT_EQ(p.Finish(), "ok");

  // The capture goes into an image and comes back as records a restore on this host accepts,
  // given the same libc the process ran on.
  TempDir dir;
  std::string image = dir.path() + "/python.snapshot";
  ASSERT_TRUE(WriteImage(*state, image));
  auto reader = ImageReader::Open(image);
  ASSERT_TRUE(reader) << reader.error().ToString();
  EXPECT_EQ(reader->threads().size(), 1u);
  EXPECT_EQ(reader->areas().size(), state->areas.size());
  std::string libc_path;
  for (const MemoryArea& a : state->areas) {
    if (a.path.find("libc.so.6") != std::string::npos) libc_path = a.path;
  }
  auto libc_identity = LibcIdentity(libc_path, libc_path);
  ASSERT_TRUE(libc_identity) << libc_identity.error().ToString();
  auto host = HostCompat(*libc_identity);
  ASSERT_TRUE(host) << host.error().ToString();
  auto compatible = CheckCompat(reader->compat(), *host);
  EXPECT_TRUE(compatible) << compatible.error().ToString();
  host->glibc_version = "another libc";
  EXPECT_FALSE(CheckCompat(reader->compat(), *host));
}

}  // namespace
}  // namespace ember::snapshot
