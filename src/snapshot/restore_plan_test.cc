#include "snapshot/restore_plan.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <string>

#include "snapshot/image_writer.h"
#include "snapshot/restore_plan_frames.h"
#include "snapshot/test_state.h"

namespace ember::snapshot {
namespace {

// The format tests' synthetic state, made restorable: one xsave size for every thread (as on a
// real host) and a path for the shared file mapping.
ProcessState SyntheticState(int threads, int areas, int files) {
  ProcessState s = testing::SyntheticState(threads, areas, files);
  s.compat.xsave_size = 1024;
  for (ThreadState& t : s.threads) t.xsave.resize(1024, 0x5a);
  for (MemoryArea& a : s.areas) {
    if (a.kind == AreaKind::kFileShared) a.path = "/srv/app/shared";
  }
  return s;
}

ImageReader Open(const ProcessState& state) {
  auto bytes = EncodeImage(state);
  EXPECT_TRUE(bytes) << bytes.error().ToString();
  UniqueFd fd(::memfd_create("plan-test", MFD_CLOEXEC));
  EXPECT_EQ(::write(fd.get(), bytes->data(), bytes->size()), static_cast<ssize_t>(bytes->size()));
  auto image = ImageReader::Open(std::move(fd), "test.snap");
  EXPECT_TRUE(image) << image.error().ToString();
  return std::move(*image);
}

template <typename T>
const T* Table(const std::vector<uint8_t>& plan, uint64_t offset) {
  return reinterpret_cast<const T*>(plan.data() + offset);
}

const PlanHeader& Header(const std::vector<uint8_t>& plan) {
  return *reinterpret_cast<const PlanHeader*>(plan.data());
}

TEST(RestorePlanTest, EveryAreaThreadAndFileAppears) {
  ProcessState state = SyntheticState(3, 5, 5);
  ImageReader image = Open(state);
  RestoreSettings settings;
  settings.uid = 1000;
  settings.gid = 1001;
  settings.memory_mode = RestoreSettings::MemoryMode::kCopy;
  settings.seccomp_bpf.assign(16, 0xab);
  auto plan = BuildRestorePlan(image, settings);
  ASSERT_TRUE(plan) << plan.error().ToString();
  const PlanHeader& h = Header(*plan);
  EXPECT_EQ(std::memcmp(h.magic, kPlanMagic, 8), 0);
  EXPECT_EQ(h.version, kPlanVersion);
  EXPECT_EQ(h.total_size, plan->size());
  EXPECT_EQ(h.pid, 1);
  EXPECT_EQ(h.uid, 1000u);
  EXPECT_EQ(h.gid, 1001u);
  EXPECT_EQ(h.umask, 027u);
  EXPECT_EQ(h.flags, kPlanCopyMemory | kPlanTimeNamespace);
  EXPECT_EQ(h.seccomp_len, 2u);
  EXPECT_STREQ(reinterpret_cast<const char*>(plan->data() + h.cwd_offset), "/srv/app");
  EXPECT_EQ(h.mm.brk, state.mm.brk);
  EXPECT_EQ(h.rlimits[7].max, state.rlimits[7].max);
  EXPECT_EQ(h.sigactions[4].handler, state.signals[4].handler);
  EXPECT_EQ(h.auxv_words, state.mm.auxv.size());

  // Areas: the vdso goes to the header, the others into the table with their runs.
  ASSERT_EQ(h.area_count, 4u);
  EXPECT_EQ(h.vdso_start, state.areas[3].start);
  EXPECT_EQ(h.vdso_end, state.areas[3].end);
  const PlanArea* areas = Table<PlanArea>(*plan, h.areas_offset);
  const PlanRun* runs = Table<PlanRun>(*plan, h.runs_offset);
  EXPECT_EQ(areas[0].kind, kPlanFilePrivate);
  EXPECT_STREQ(reinterpret_cast<const char*>(plan->data() + areas[0].path_offset),
               "/usr/lib/libarea0.so");
  ASSERT_EQ(areas[0].run_count, 2u);
  EXPECT_EQ(runs[areas[0].first_run].address, state.areas[0].start);
  EXPECT_EQ(runs[areas[0].first_run].length, 2 * kPageSize);
  EXPECT_EQ(runs[areas[0].first_run + 1].address, state.areas[0].start + 3 * kPageSize);
  EXPECT_EQ(areas[2].kind, kPlanStack);
  EXPECT_EQ(areas[2].map_flags, MAP_PRIVATE | MAP_GROWSDOWN);
  EXPECT_EQ(areas[3].kind, kPlanFileShared);
  EXPECT_EQ(areas[3].map_flags, MAP_SHARED);
  uint64_t stored = 0;
  for (uint32_t i = 0; i < h.run_count; ++i) stored += runs[i].length / kPageSize;
  EXPECT_EQ(stored, 3u + 5u + 3u + 3u);

  // Files: sorted by fd, each with its source.
  ASSERT_EQ(h.file_count, 5u);
  EXPECT_EQ(h.max_fd, 4);
  const PlanFile* files = Table<PlanFile>(*plan, h.files_offset);
  EXPECT_EQ(files[0].source, kFromPath);  // a device
  EXPECT_EQ(files[1].source, kFromStdout);
  EXPECT_EQ(files[2].source, kFromPath);
  EXPECT_EQ(files[2].offset, 200u);
  EXPECT_EQ(files[2].reopen, kReopenLazy);
  EXPECT_EQ(files[0].reopen, kReopenEager);  // a device
  EXPECT_EQ(h.reconnector_pid, 4);           // tids 1-3 are taken
  EXPECT_STREQ(reinterpret_cast<const char*>(plan->data() + files[2].path_offset),
               "/srv/app/file2");
  EXPECT_EQ(files[3].source, kFromControl);
  EXPECT_EQ(files[4].source, kFromPath);  // a directory

  // Threads and their frames: registers, mask, altstack, fpstate with the signal-frame header.
  ASSERT_EQ(h.thread_count, 3u);
  const PlanThread* threads = Table<PlanThread>(*plan, h.threads_offset);
  for (uint32_t i = 0; i < 3; ++i) {
    const ThreadState& t = state.threads[i];
    EXPECT_EQ(threads[i].tid, t.tid);
    EXPECT_EQ(threads[i].fs_base, t.fs_base);
    EXPECT_EQ(threads[i].rseq_addr, t.rseq_addr);
    EXPECT_EQ(threads[i].frame_offset % 64, 0u);
    const PlanFrame& f = *Table<PlanFrame>(*plan, threads[i].frame_offset);
    EXPECT_EQ(f.rip, t.regs.rip);
    EXPECT_EQ(f.rsp, t.regs.rsp);
    EXPECT_EQ(f.rax, t.regs.rax);
    EXPECT_EQ(f.uc_sigmask, t.sigmask);
    EXPECT_EQ(f.ss_sp, t.altstack_sp);
    EXPECT_EQ(f.ss_flags, t.altstack_flags);
    ASSERT_NE(f.fpstate, 0u);
    uint64_t xsave = f.fpstate - kPlanAddress;
    EXPECT_EQ(xsave % 64, 0u);
    const uint8_t* x = plan->data() + xsave;
    EXPECT_EQ(x[0], t.xsave[0]);
    EXPECT_EQ(x[600], t.xsave[600]);
    uint32_t magic1, magic2;
    std::memcpy(&magic1, x + 464, 4);
    std::memcpy(&magic2, x + t.xsave.size(), 4);
    EXPECT_EQ(magic1, kFpXstateMagic1);
    EXPECT_EQ(magic2, kFpXstateMagic2);
  }
}

// A Python process has a hundred file mappings before its vdso: the plan grows (and moves) while
// the areas are added, and the kernel areas must still land in the header.
TEST(RestorePlanTest, KernelAreasAfterManyFileAreas) {
  ProcessState state = SyntheticState(1, 1, 0);
  state.areas.clear();
  for (int i = 0; i < 200; ++i) {
    MemoryArea a;
    a.start = 0x7f0000000000 + uint64_t(i) * 0x10000;
    a.end = a.start + kPageSize;
    a.prot = PROT_READ;
    a.flags = MAP_PRIVATE;
    a.kind = AreaKind::kFilePrivate;
    a.path = "/usr/lib/x86_64-linux-gnu/a-rather-long-library-name-" + std::to_string(i) + ".so";
    state.areas.push_back(a);
  }
  const AreaKind kinds[] = {AreaKind::kVvar, AreaKind::kVvarVclock, AreaKind::kVdso};
  for (int i = 0; i < 3; ++i) {
    MemoryArea a;
    a.start = 0x7f1000000000 + uint64_t(i) * 4 * kPageSize;
    a.end = a.start + 4 * kPageSize;
    a.kind = kinds[i];
    state.areas.push_back(a);
  }
  ImageReader image = Open(state);
  auto plan = BuildRestorePlan(image, RestoreSettings{});
  ASSERT_TRUE(plan) << plan.error().ToString();
  const PlanHeader& h = Header(*plan);
  EXPECT_EQ(h.area_count, 200u);
  EXPECT_EQ(h.vvar_start, 0x7f1000000000u);
  EXPECT_EQ(h.vclock_start, 0x7f1000000000u + 4 * kPageSize);
  EXPECT_EQ(h.vdso_start, 0x7f1000000000u + 8 * kPageSize);
  EXPECT_EQ(h.vdso_end, 0x7f1000000000u + 12 * kPageSize);
}

TEST(RestorePlanTest, EagerFilesWhenLazyFilesAreOff) {
  ImageReader image = Open(SyntheticState(3, 2, 5));
  RestoreSettings settings;
  settings.lazy_files = false;
  auto plan = BuildRestorePlan(image, settings);
  ASSERT_TRUE(plan) << plan.error().ToString();
  const PlanHeader& h = Header(*plan);
  EXPECT_EQ(h.reconnector_pid, 0);
  const PlanFile* files = Table<PlanFile>(*plan, h.files_offset);
  for (uint32_t i = 0; i < h.file_count; ++i) EXPECT_EQ(files[i].reopen, kReopenEager) << i;
}

TEST(RestorePlanTest, WorkingSetBecomesCoalescedImageRanges) {
  ProcessState state = SyntheticState(1, 3, 0);
  // Area 0 stores pages 0, 1, 3 (file pages 0,1,2 of its data); ask for all three and one page
  // that is not stored.
  state.working_set = {state.areas[0].start + 3 * kPageSize, state.areas[0].start,
                       state.areas[0].start + kPageSize, state.areas[0].start + 2 * kPageSize};
  ImageReader image = Open(state);
  RestoreSettings settings;
  settings.prefetch_working_set = true;
  auto plan = BuildRestorePlan(image, settings);
  ASSERT_TRUE(plan) << plan.error().ToString();
  const PlanHeader& h = Header(*plan);
  EXPECT_TRUE(h.flags & kPlanPrefetch);
  ASSERT_EQ(h.prefetch_count, 1u);
  const PlanRange& r = *Table<PlanRange>(*plan, h.prefetch_offset);
  EXPECT_EQ(r.length, 3 * kPageSize);
  EXPECT_EQ(r.image_offset, image.areas()[0].runs()[0].file_offset);
}

TEST(RestorePlanTest, PrefetchReadsEveryStoredPageOfPrivateFileMappings) {
  // Area 0 (file-private) stores pages 0, 1, 3; area 1 (anonymous) stores 5 pages. No working
  // set: only the file-private area's pages are read, restored from the image as they are.
  ProcessState state = SyntheticState(1, 3, 0);
  state.working_set.clear();
  ImageReader image = Open(state);
  RestoreSettings settings;
  settings.prefetch_working_set = true;
  auto plan = BuildRestorePlan(image, settings);
  ASSERT_TRUE(plan) << plan.error().ToString();
  const PlanHeader& h = Header(*plan);
  ASSERT_EQ(h.prefetch_count, 1u);
  const PlanRange& r = *Table<PlanRange>(*plan, h.prefetch_offset);
  EXPECT_EQ(r.image_offset, image.areas()[0].runs()[0].file_offset);
  EXPECT_EQ(r.length, 3 * kPageSize);
}

TEST(RestorePlanTest, AreaInTheRestorersRangeIsRefusedByName) {
  ProcessState state = SyntheticState(1, 2, 0);
  state.areas[1].start = kRestorerBase + 0x10000;
  state.areas[1].end = state.areas[1].start + 8 * kPageSize;
  ImageReader image = Open(state);
  auto plan = BuildRestorePlan(image, RestoreSettings{});
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("0x100000010000"), std::string::npos)
      << plan.error().ToString();
  EXPECT_NE(plan.error().message().find("restorer's own range"), std::string::npos);
}

TEST(RestorePlanTest, BadSettingsAreRefused) {
  ImageReader image = Open(SyntheticState(1, 2, 0));
  RestoreSettings odd;
  odd.seccomp_bpf.assign(12, 0);
  EXPECT_FALSE(BuildRestorePlan(image, odd));
  RestoreSettings huge;
  huge.seccomp_bpf.assign(8 * 4097, 0);
  EXPECT_FALSE(BuildRestorePlan(image, huge));
  RestoreSettings relative;
  relative.exe_path = "bin/python";
  auto plan = BuildRestorePlan(image, relative);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("bin/python"), std::string::npos);
  RestoreSettings nobody;
  nobody.uid = static_cast<uint32_t>(-1);
  EXPECT_FALSE(BuildRestorePlan(image, nobody));
}

TEST(RestorePlanTest, PipeOutsideStdioIsRefused) {
  ProcessState state = SyntheticState(1, 2, 0);
  FileDescriptor pipe;
  pipe.fd = 7;
  pipe.kind = FileKind::kPipe;
  state.files.push_back(pipe);
  ImageReader image = Open(state);
  auto plan = BuildRestorePlan(image, RestoreSettings{});
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("fd 7"), std::string::npos);
}

TEST(RestorePlanTest, PlanMemfdIsSealed) {
  ImageReader image = Open(SyntheticState(2, 3, 3));
  auto plan = BuildRestorePlan(image, RestoreSettings{});
  ASSERT_TRUE(plan) << plan.error().ToString();
  auto fd = PlanMemfd(*plan);
  ASSERT_TRUE(fd) << fd.error().ToString();
  EXPECT_EQ(::lseek(fd->get(), 0, SEEK_END), static_cast<off_t>(plan->size()));
  EXPECT_EQ(::fcntl(fd->get(), F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
  EXPECT_LT(::pwrite(fd->get(), "x", 1, 0), 0);
  PlanHeader h;
  ASSERT_EQ(::pread(fd->get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  EXPECT_EQ(std::memcmp(h.magic, kPlanMagic, 8), 0);
}

TEST(RestorePlanTest, ReportsNameTheStage) {
  RestoreReport ok{kReportMagic, kStageSuccess, 0, 0, 0, {}};
  EXPECT_TRUE(CheckRestoreReport(ok));
  RestoreReport map{kReportMagic, kStageMapArea, ENOMEM, 0, 0x7f0000000000, {}};
  auto status = CheckRestoreReport(map);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().ToString().find("map area at 0x7f0000000000"), std::string::npos)
      << status.error().ToString();
  EXPECT_EQ(status.error().sys_errno(), ENOMEM);
  RestoreReport bad{0, kStageSuccess, 0, 0, 0, {}};
  EXPECT_FALSE(CheckRestoreReport(bad));
  RestoreReport offset{kReportMagic, kStageTimeNamespace, ERANGE, 0, CLOCK_BOOTTIME, {}};
  status = CheckRestoreReport(offset);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().ToString().find("enter a time namespace (the CLOCK_BOOTTIME offset)"),
            std::string::npos)
      << status.error().ToString();
  EXPECT_EQ(status.error().sys_errno(), ERANGE);
}

// The restorer continues the clocks from the image's: the plan carries them as recorded (the
// offsets are the restorer's to compute, against its own now).
TEST(RestorePlanTest, CarriesTheRecordedClocks) {
  ProcessState state = SyntheticState(1, 2, 1);
  state.clocks = {.monotonic_ns = 987654321012345, .boottime_ns = 987700000000001};
  ImageReader image = Open(state);
  auto plan = BuildRestorePlan(image, RestoreSettings{});
  ASSERT_TRUE(plan) << plan.error().ToString();
  EXPECT_EQ(Header(*plan).checkpoint_clocks.monotonic_ns, 987654321012345u);
  EXPECT_EQ(Header(*plan).checkpoint_clocks.boottime_ns, 987700000000001u);
  EXPECT_NE(Header(*plan).flags & kPlanTimeNamespace, 0u);
}

}  // namespace
}  // namespace ember::snapshot
