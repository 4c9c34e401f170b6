// The handoff of a restore shell: a restore sandbox built ahead of its instance (namespaces,
// cgroup with the function's limits, overlay and pivot_root done, ember-restore exec'ed) whose
// ember-restore waits, parked, until the daemon hands it an instance. Building the sandbox is
// most of a restore's time (RunD pre-creates the same resources); the handoff is one message.
//
// Contract with ember-restore (src/restorer/parked.cc): argv[1] == kParkedFlag, fd 4 a unix
// stream socket instead of the plan. One ShellHandoff arrives on it with exactly three fds
// (SCM_RIGHTS): the plan, the image and the report channel, which ember-restore moves to 4, 5
// and 6 before it proceeds as an unparked restore; it first sets the instance's hostname. EOF
// (the daemon dropped the shell) makes it exit 0; a malformed handoff exits 125 with no report.
//
// Freestanding-safe: <stdint.h> only.
#pragma once

#include <stdint.h>

namespace ember::snapshot {

inline constexpr char kParkedFlag[] = "--parked";
inline constexpr uint32_t kShellHandoffMagic = 0x454d4748;  // "HGME"
inline constexpr uint32_t kShellHostnameMax = 64;           // = HOST_NAME_MAX
inline constexpr uint32_t kShellHandoffFds = 3;             // plan, image, report

struct ShellHandoff {
  uint32_t magic;
  uint32_t hostname_length;
  char hostname[kShellHostnameMax];
};
static_assert(sizeof(ShellHandoff) == 72);

}  // namespace ember::snapshot
