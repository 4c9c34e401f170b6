// Lines copied from /proc on the 6.18 host ember is developed on.
#include "snapshot/proc_parsers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

namespace ember::snapshot::proc {
namespace {

constexpr char kMaps[] =
    "55d8de51c000-55d8de51e000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
    "55d8ed0f8000-55d8ed119000 rw-p 00000000 00:00 0                          [heap]\n"
    "7ff85fb63000-7ff85fb85000 rw-p 00000000 00:00 0 \n"
    "7ff85fc0c000-7ff85fd62000 r-xp 00026000 fe:00 332835                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ff85fdcb000-7ff85fdd2000 r--s 00000000 fe:00 332280                     "
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n"
    "7ff85fdd5000-7ff85fdd9000 r--p 00000000 00:00 0                          [vvar]\n"
    "7ff85fdd9000-7ff85fddb000 r--p 00000000 00:00 0                          [vvar_vclock]\n"
    "7ff85fddb000-7ff85fddd000 r-xp 00000000 00:00 0                          [vdso]\n"
    "7f0000000000-7f0000001000 rw-s 00000000 00:01 1043                       /dev/zero (deleted)\n"
    "7f0000002000-7f0000003000 rw-p 00000000 fe:00 12                         /tmp/a file\n"
    "7fff537e4000-7fff53805000 rw-p 00000000 00:00 0                          [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(ProcParsersTest, MapsFieldsAndPaths) {
  auto maps = ParseMaps(kMaps);
  ASSERT_TRUE(maps) << maps.error().ToString();
  ASSERT_EQ(maps->size(), 12u);
  const MapsEntry& cat = (*maps)[0];
  EXPECT_EQ(cat.start, 0x55d8de51c000u);
  EXPECT_EQ(cat.end, 0x55d8de51e000u);
  EXPECT_EQ(cat.prot, PROT_READ);
  EXPECT_FALSE(cat.shared);
  EXPECT_EQ(cat.dev_major, 0xfeu);
  EXPECT_EQ(cat.dev_minor, 0u);
  EXPECT_EQ(cat.inode, 247134u);
  EXPECT_EQ(cat.path, "/usr/bin/cat");
  EXPECT_EQ((*maps)[1].path, "[heap]");
  EXPECT_EQ((*maps)[1].prot, PROT_READ | PROT_WRITE);
  EXPECT_EQ((*maps)[2].path, "");
  EXPECT_EQ((*maps)[3].offset, 0x26000u);
  EXPECT_EQ((*maps)[3].prot, PROT_READ | PROT_EXEC);
  EXPECT_TRUE((*maps)[4].shared);
  EXPECT_EQ((*maps)[6].path, "[vvar_vclock]");
  EXPECT_EQ((*maps)[8].path, "/dev/zero (deleted)");
  EXPECT_EQ((*maps)[9].path, "/tmp/a file");
  EXPECT_EQ((*maps)[11].start, 0xffffffffff600000u);
  EXPECT_EQ((*maps)[11].prot, PROT_EXEC);
}

TEST(ProcParsersTest, MapsRejectsGarbage) {
  EXPECT_FALSE(ParseMaps("55d8de51c000 r--p 00000000 fe:00 1 /x\n"));
  EXPECT_FALSE(ParseMaps("1000-2000 rw 0 fe:00 1\n"));
  EXPECT_FALSE(ParseMaps("1000-2000 rw-p zz fe:00 1\n"));
  auto empty = ParseMaps("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ProcParsersTest, SmapsVmFlags) {
  constexpr char kSmaps[] =
      "55f3325fb000-55f3325fd000 r--p 00000000 fe:00 247498                     /usr/bin/head\n"
      "Size:                  8 kB\n"
      "KernelPageSize:        4 kB\n"
      "Rss:                   8 kB\n"
      "THPeligible:           0\n"
      "VmFlags: rd mr mw me \n"
      "7fff537e4000-7fff53805000 rw-p 00000000 00:00 0                          [stack]\n"
      "Size:                132 kB\n"
      "VmFlags: rd wr mr mw me gd ac \n"
      "7ff85fdd5000-7ff85fdd9000 r--p 00000000 00:00 0                          [vvar]\n"
      "Size:                 16 kB\n"
      "VmFlags: rd mr pf io de dd \n"
      "7f0000000000-7f0000001000 rw-s 00000000 00:01 1043    /dev/zero (deleted)\n"
      "VmFlags: rd wr sh mr mw me ms \n";
  auto flags = ParseSmapsVmFlags(kSmaps);
  ASSERT_TRUE(flags) << flags.error().ToString();
  ASSERT_EQ(flags->size(), 4u);
  EXPECT_FALSE(flags->at(0x55f3325fb000).growsdown);
  EXPECT_FALSE(flags->at(0x55f3325fb000).shared);
  EXPECT_TRUE(flags->at(0x7fff537e4000).growsdown);
  EXPECT_TRUE(flags->at(0x7ff85fdd5000).dontdump);
  EXPECT_TRUE(flags->at(0x7ff85fdd5000).pfnmap);
  EXPECT_TRUE(flags->at(0x7ff85fdd5000).io);
  EXPECT_TRUE(flags->at(0x7f0000000000).shared);
  EXPECT_FALSE(ParseSmapsVmFlags("VmFlags: rd\n"));
}

TEST(ProcParsersTest, StatMmBounds) {
  // comm with a space and a parenthesis, as a thread may name itself.
  constexpr char kStat[] =
      "21402 (ca t) x) S 21397 21397 20488 0 -1 4194304 102 0 0 0 0 0 0 0 20 0 1 0 3223694 "
      "3133440 396 18446744073709551615 93987489796096 93987489815977 140722988772816 0 0 0 0 0 "
      "0 0 0 0 17 1 0 0 0 0 0 93987489831984 93987489833600 93987773272064 140722988776075 "
      "140722988776095 140722988776095 140722988777451 0\n";
  auto stat = ParseStat(kStat);
  ASSERT_TRUE(stat) << stat.error().ToString();
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->mm.start_code, 93987489796096u);
  EXPECT_EQ(stat->mm.end_code, 93987489815977u);
  EXPECT_EQ(stat->mm.start_stack, 140722988772816u);
  EXPECT_EQ(stat->mm.start_data, 93987489831984u);
  EXPECT_EQ(stat->mm.end_data, 93987489833600u);
  EXPECT_EQ(stat->mm.start_brk, 93987773272064u);
  EXPECT_EQ(stat->mm.arg_start, 140722988776075u);
  EXPECT_EQ(stat->mm.arg_end, 140722988776095u);
  EXPECT_EQ(stat->mm.env_start, 140722988776095u);
  EXPECT_EQ(stat->mm.env_end, 140722988777451u);
  EXPECT_FALSE(ParseStat("1 (x) S 1 2 3\n"));
  EXPECT_FALSE(ParseStat("no parenthesis"));
}

TEST(ProcParsersTest, Status) {
  constexpr char kStatus[] =
      "Name:\tcat\nUmask:\t0027\nState:\tR (running)\nTgid:\t21404\nNSpid:\t21404\t7\n"
      "Threads:\t3\nSigQ:\t0/96365\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000200\n"
      "SigBlk:\t0000000000010002\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n";
  auto status = ParseStatus(kStatus);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_EQ(status->umask, 027u);
  EXPECT_EQ(status->threads, 3);
  EXPECT_EQ(status->sig_pnd, 0u);
  EXPECT_EQ(status->shd_pnd, 0x200u);
  EXPECT_EQ(status->sig_blk, 0x10002u);
  EXPECT_EQ(status->ns_pid, (std::vector<pid_t>{21404, 7}));
  EXPECT_EQ(FirstSignal(status->shd_pnd), SIGUSR1);
  EXPECT_FALSE(ParseStatus("Name:\tx\n"));
  EXPECT_FALSE(ParseStatus("NSpid:\t1\nSigPnd:\tzz\n"));
}

TEST(ProcParsersTest, Fdinfo) {
  auto info = ParseFdinfo("pos:\t4096\nflags:\t02100002\nmnt_id:\t24\nino:\t3\n");
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->pos, 4096u);
  EXPECT_EQ(info->flags, 02100002);
  EXPECT_EQ(info->mnt_id, 24);
  EXPECT_EQ(info->ino, 3u);
  // eventfd and other kinds append lines of their own.
  auto eventfd = ParseFdinfo("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\neventfd-count: 0\n");
  ASSERT_TRUE(eventfd);
  EXPECT_EQ(eventfd->flags, 02);
  EXPECT_FALSE(ParseFdinfo("mnt_id:\t24\n"));
  EXPECT_FALSE(ParseFdinfo("pos:\t1\nflags:\t9\n"));  // not octal
}

TEST(ProcParsersTest, Timers) {
  constexpr char kTimers[] =
      "ID: 2\nsignal: 12/0000000000000000\nnotify: signal/tid.21452\nClockID: 7\n"
      "ID: 1\nsignal: 14/0000000000000000\nnotify: signal/pid.21452\nClockID: 0\n"
      "ID: 0\nsignal: 10/0000000000001234\nnotify: none/pid.21452\nClockID: 1";
  auto timers = ParseTimers(kTimers);
  ASSERT_TRUE(timers) << timers.error().ToString();
  ASSERT_EQ(timers->size(), 3u);
  EXPECT_EQ((*timers)[0].id, 2);
  EXPECT_EQ((*timers)[0].signal, SIGUSR2);
  EXPECT_EQ((*timers)[0].notify, SIGEV_THREAD_ID);
  EXPECT_EQ((*timers)[0].notify_pid, 21452);
  EXPECT_EQ((*timers)[0].clock_id, 7);
  EXPECT_EQ((*timers)[1].notify, SIGEV_SIGNAL);
  EXPECT_EQ((*timers)[1].signal, SIGALRM);
  EXPECT_EQ((*timers)[2].sigev_value, 0x1234u);
  EXPECT_EQ((*timers)[2].notify, SIGEV_NONE);
  EXPECT_FALSE(ParseTimers("signal: 1/0\n"));
  EXPECT_FALSE(ParseTimers("ID: 1\nnotify: bogus/pid.1\n"));
}

TEST(ProcParsersTest, DescribeSockets) {
  constexpr char kTcp[] =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
      "timeout inode\n"
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
      "0 12345 1 00000000953b90fe 100 0 0 10 0\n";
  EXPECT_EQ(DescribeSocket("tcp", kTcp, 12345), "TCP socket 127.0.0.1:8080 -> 0.0.0.0:0 LISTEN");
  EXPECT_EQ(DescribeSocket("tcp", kTcp, 999), "");
  constexpr char kUnix[] =
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000097073e91: 00000003 00000000 00000000 0001 03 4744430\n"
      "000000000e8c07c7: 00000003 00000000 00000000 0005 03 4744457 /run/x.sock\n";
  EXPECT_EQ(DescribeSocket("unix", kUnix, 4744430), "unix stream socket");
  EXPECT_EQ(DescribeSocket("unix", kUnix, 4744457), "unix seqpacket socket /run/x.sock");
  EXPECT_EQ(DescribeSocket("sctp", kUnix, 4744457), "");
}

TEST(ProcParsersTest, SignalNames) {
  EXPECT_EQ(SignalName(SIGUSR1), "SIGUSR1");
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(SignalName(SIGRTMIN), "SIGRTMIN");
  EXPECT_EQ(SignalName(SIGRTMIN + 3), "SIGRTMIN+3");
  EXPECT_EQ(FirstSignal(0), 0);
  EXPECT_EQ(FirstSignal(1), 1);
}

}  // namespace
}  // namespace ember::snapshot::proc
