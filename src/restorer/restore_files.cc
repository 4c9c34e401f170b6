// File descriptors, cwd, umask and rlimits.
//
// The sandbox hands ember-restore fds 0-3 (the instance's stdio and control channel) and 4-6
// (plan, image, report), and the recorded process may use any of those numbers for something
// else. So MoveSandboxFds first moves all seven above the highest recorded fd; InstallFiles then
// puts each recorded fd at its number (dup3 from a moved source, or open + dup3 for a path) and
// closes the moved stdio sources. The plan, image and report fds stay until the end: the image is
// needed while memory is mapped, the report until the jump.
#include <fcntl.h>
#include <sys/syscall.h>

#include "restorer/restorer.h"

namespace ember::restorer {
namespace {

using snapshot::PlanFile;

constexpr int kPlanFd = 4, kImageFd = 5, kReportFd = 6;

struct KernelRlimit {
  uint64_t cur, max;
};

}  // namespace

int MoveAbove(int fd) {
  int floor = g_ctx.plan->max_fd + 1;
  if (floor < 7) floor = 7;
  if (IsError(RawSyscall(SYS_fcntl, fd, F_GETFD))) return -1;  // closed: the sandbox had none
  long moved = Check(RawSyscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, floor), snapshot::kStageMoveFds,
                     static_cast<uint64_t>(fd));
  RawSyscall(SYS_close, fd);
  return static_cast<int>(moved);
}

namespace {

int SourceFd(uint8_t source) {
  switch (source) {
    case snapshot::kFromStdin:
      return g_ctx.sources[kStdin];
    case snapshot::kFromStdout:
      return g_ctx.sources[kStdout];
    case snapshot::kFromStderr:
      return g_ctx.sources[kStderr];
    default:
      return g_ctx.sources[kControl];
  }
}

void InstallAt(long fd, const PlanFile& f) {
  if (fd == f.fd) {
    if (f.cloexec) RawSyscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    return;
  }
  Check(RawSyscall(SYS_dup3, fd, f.fd, f.cloexec ? O_CLOEXEC : 0), snapshot::kStageOpenFile,
        static_cast<uint64_t>(f.fd));
}

void OpenFromPath(const PlanFile& f) {
  long fd =
      Check(RawSyscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(PlanString(f.path_offset)),
                       f.open_flags | O_CLOEXEC),
            snapshot::kStageOpenFile, static_cast<uint64_t>(f.fd));
  if (f.offset != 0) {
    Check(RawSyscall(SYS_lseek, fd, static_cast<long>(f.offset), SEEK_SET),
          snapshot::kStageOpenFile, static_cast<uint64_t>(f.fd));
  }
  InstallAt(fd, f);
  if (fd != f.fd) RawSyscall(SYS_close, fd);
}

}  // namespace

void MoveSandboxFds() {
  for (int i = 0; i < kSourceCount; ++i) g_ctx.sources[i] = MoveAbove(i);
  g_ctx.image_fd = MoveAbove(kImageFd);
  g_ctx.report_fd = MoveAbove(kReportFd);
  RawSyscall(SYS_close, kPlanFd);  // mapped already; the mapping keeps the memfd alive
  if (g_ctx.image_fd < 0) Die(snapshot::kStageMoveFds, -9 /* EBADF */, kImageFd);
}

void InstallFiles() {
  const PlanHeader& p = *g_ctx.plan;
  const PlanFile* files = PlanTable<PlanFile>(p.files_offset);
  for (uint32_t i = 0; i < p.file_count; ++i) {
    const PlanFile& f = files[i];
    if (f.source == snapshot::kFromPath) {
      // Lazy files stay free here: HandOffLazyFiles puts their placeholders on them.
      if (f.reopen != snapshot::kReopenLazy) OpenFromPath(f);
      continue;
    }
    int source = SourceFd(f.source);
    if (source < 0) Die(snapshot::kStageOpenFile, -9 /* EBADF: the sandbox gave none */, f.fd);
    InstallAt(source, f);
  }
  for (int& source : g_ctx.sources) {
    if (source >= 0) RawSyscall(SYS_close, source);
    source = -1;
  }
}

void RestoreCwdUmaskRlimits() {
  const PlanHeader& p = *g_ctx.plan;
  Check(RawSyscall(SYS_chdir, reinterpret_cast<long>(PlanString(p.cwd_offset))),
        snapshot::kStageCwd, 0);
  RawSyscall(SYS_umask, p.umask);
  for (int resource = 0; resource < 16; ++resource) {
    KernelRlimit now{};
    Check(RawSyscall(SYS_prlimit64, 0, resource, 0, reinterpret_cast<long>(&now)),
          snapshot::kStageRlimit, static_cast<uint64_t>(resource));
    // Never above the sandbox's hard limit: raising it would need privilege the restored
    // process must not have had.
    KernelRlimit want{p.rlimits[resource].cur, p.rlimits[resource].max};
    if (want.max > now.max) want.max = now.max;
    if (want.cur > want.max) want.cur = want.max;
    if (want.cur == now.cur && want.max == now.max) continue;
    Check(RawSyscall(SYS_prlimit64, 0, resource, reinterpret_cast<long>(&want), 0),
          snapshot::kStageRlimit, static_cast<uint64_t>(resource));
  }
}

}  // namespace ember::restorer
