// The clock offsets of a restored process's time namespace (ember-restore step 4, main.cc).
//
// The image records CLOCK_MONOTONIC and CLOCK_BOOTTIME as the process saw them when it was
// frozen (snapshot/format.h, ClockRecord). The restored process must never see either below a
// value it already observed, or it breaks every "elapsed = now - then" it computes. The restorer
// gives each clock the offset max(0, recorded - now), `now` being the restoring host's clock:
//   * restored on the boot it was taken on (recorded <= now, the common case): offset 0, the
//     instance's clocks are the host's, exactly as before offsets existed. CRIU's rule
//     (offset = recorded - now, negative here) would instead stop the clocks while the image
//     sat on disk: an instance restored a day later would believe a few milliseconds passed
//     since its checkpoint, and its clocks would lag the host's (logs, /proc/uptime, any reading
//     compared with one taken outside the sandbox);
//   * restored after a reboot, or on a host up for less time (recorded > now): the clocks
//     continue from the recorded value, as CRIU's rule makes them (each restore from its own
//     now: instances of one snapshot restored a second apart read a second apart, and never
//     below the recorded value);
//   * a restored instance checkpointed again is recorded with its offset included, so the rule
//     holds across generations.
// The kernel does not nest time namespaces: offsets are from the host's clocks, which are
// ember-restore's own before the unshare (the sandbox gives it no time namespace of its own).
//
// Freestanding: raw syscalls, no allocation (see restorer.h).
#pragma once

#include <stdint.h>

#include "snapshot/restore_plan_format.h"

namespace ember::restorer {

// max(0, recorded_ns - now_ns): the offset in ns that makes a clock reading `now_ns` read
// `recorded_ns` at the same instant, or 0 when it already reads at least that.
uint64_t ClockOffsetNs(uint64_t recorded_ns, uint64_t now_ns);

// Room for the longest line FormatTimensOffset writes ("monotonic " + 11 + " " + 9 + "\n").
inline constexpr unsigned long kTimensLineMax = 48;

// Writes "<clock> <sec> <nsec>\n", the line /proc/PID/timens_offsets takes, for `offset_ns`
// into `out` (kTimensLineMax bytes, no NUL); returns its length. `clock` is "monotonic" or
// "boottime".
unsigned long FormatTimensOffset(const char* clock, uint64_t offset_ns, char* out);

// Right after unshare(CLONE_NEWTIME) and before anything enters the new namespace (the kernel
// freezes its offsets then: EACCES): writes each clock's non-zero offset to
// /proc/self/timens_offsets, which sets those of the namespace for the restorer's children. The
// write needs CAP_SYS_TIME in the sandbox's user namespace (RestorerCapabilities). Nothing is
// written when both offsets are 0. On failure: Die(kStageTimeNamespace, errno, clock id).
void SetTimeOffsets(const snapshot::PlanClocks& recorded);

}  // namespace ember::restorer
