// The host half of a restore: turns an opened image (image_reader.h) and the sandbox's settings
// into the restore plan (restore_plan_format.h) that ember-restore applies inside the new
// sandbox. Pure: no process is touched; every refusal names the area, thread, file or setting.
//
//   auto image = ImageReader::Open(path);
//   EMBER_TRY(CheckCompat(image->compat(), host));         // the caller's job
//   EMBER_ASSIGN_OR_RETURN(auto plan, BuildRestorePlan(*image, settings));
//   EMBER_ASSIGN_OR_RETURN(UniqueFd plan_fd, PlanMemfd(plan));   // -> fd 4 of ember-restore
//   ... exec ember-restore; read one RestoreReport from fd 6; CheckRestoreReport(report)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "snapshot/format.h"
#include "snapshot/image_reader.h"
#include "snapshot/restore_plan_format.h"

namespace ember::snapshot {

struct RestoreSettings {
  enum class MemoryMode {
    kOverlay,  // stored pages mapped MAP_PRIVATE from the image: the page cache is shared
    kCopy,     // anonymous memory, stored pages read in (pread): nothing shared, plain semantics
  };
  // The sandbox's strict seccomp filter (struct sock_filter[]); empty = none. Installed last,
  // by every thread, after capabilities are dropped and no_new_privs is set.
  std::vector<uint8_t> seccomp_bpf;
  uint32_t uid = 0, gid = 0;  // switched to at the end (raw setres[ug]id, every thread)
  // Cold boot: read the image's recorded working set into the page cache before the task runs.
  bool prefetch_working_set = false;
  // The path /proc/self/exe must show inside the sandbox; empty = leave it (ember-restore).
  std::string exe_path;
  bool time_namespace = true;
  // On-demand I/O reconnection: regular files are reopened on first use by a reconnector
  // process (src/restorer/lazy_files.h), not at restore. The first 128 regular files are lazy,
  // any beyond are reopened eagerly.
  bool lazy_files = true;
  MemoryMode memory_mode = MemoryMode::kOverlay;
};

Result<std::vector<uint8_t>> BuildRestorePlan(const ImageReader& image,
                                              const RestoreSettings& settings);

// The plan in a sealed memfd (no write, grow, shrink; seals sealed), for fd 4 of ember-restore.
Result<UniqueFd> PlanMemfd(std::span<const uint8_t> plan);

// The one place that decides eager or on-demand reopening of a recorded file: regular files are
// lazy when the settings ask for it (the reconnector of src/restorer/lazy_files.h serves them),
// everything else (directories, devices) is opened eagerly. `lazy_so_far`: files already lazy.
PlanReopen DecideReopen(const FileRecord& file, const RestoreSettings& settings,
                        uint32_t lazy_so_far);

std::string_view RestoreStageName(uint32_t stage);
// Ok for a success record; otherwise an error naming the stage, errno and detail, e.g.
// "restore: map area at 0x7f0000000000: ENOMEM".
Status CheckRestoreReport(const RestoreReport& report);

}  // namespace ember::snapshot
