// The report on fd 6 and the restorer's clock. One fixed-size record (RestoreReport) is the
// whole protocol: a pipe write of 72 bytes is atomic, so the reader gets all of it or nothing.
#include <sys/syscall.h>
#include <time.h>

#include "restorer/restorer.h"

namespace ember::restorer {

Context g_ctx;

namespace {

void WriteReport(uint32_t stage, int32_t error, uint64_t detail) {
  if (g_ctx.report_fd < 0) return;
  snapshot::RestoreReport report{};
  report.magic = snapshot::kReportMagic;
  report.stage = stage;
  report.error = error;
  report.detail = detail;
  for (uint32_t i = 0; i < snapshot::kReportPhases; ++i) report.phase_ns[i] = g_ctx.phase_ns[i];
  RawSyscall(SYS_write, g_ctx.report_fd, reinterpret_cast<long>(&report), sizeof report);
}

// Tells the reaper a record was written: a restored task that dies after this is the
// process's own business, not a failed restore.
void TellReaper() {
  if (g_ctx.sync_fd < 0) return;
  char byte = 1;
  RawSyscall(SYS_write, g_ctx.sync_fd, reinterpret_cast<long>(&byte), 1);
}

}  // namespace

[[noreturn]] void ExitGroup(int code) {
  for (;;) RawSyscall(SYS_exit_group, code);
}

[[noreturn]] void Die(uint32_t stage, long ret, uint64_t detail) {
  WriteReport(stage, static_cast<int32_t>(IsError(ret) ? -ret : 0), detail);
  TellReaper();
  ExitGroup(125);
}

void ReportSuccess() {
  g_ctx.phase_ns[snapshot::kPhaseTotal] = NowNs() - g_ctx.started_ns;
  WriteReport(snapshot::kStageSuccess, 0, 0);
  TellReaper();
  RawSyscall(SYS_close, g_ctx.report_fd);
  if (g_ctx.sync_fd >= 0) RawSyscall(SYS_close, g_ctx.sync_fd);
  g_ctx.report_fd = g_ctx.sync_fd = -1;
}

uint64_t NowNs() {
  struct timespec ts {};
  RawSyscall(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&ts));
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void EndPhase(uint32_t phase, uint64_t* mark) {
  uint64_t now = NowNs();
  g_ctx.phase_ns[phase] += now - *mark;
  *mark = now;
}

}  // namespace ember::restorer
