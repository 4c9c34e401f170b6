// Seccomp policies as data. A policy is a table of syscall names with optional argument rules;
// it reads like a spec, is unit-tested as data, and one pure function (ApplyPolicy) turns it
// into libseccomp calls. Compiling, caching and installing the result live in seccomp.h.
//
// Shape of every policy: the architecture is checked first (only the native AUDIT_ARCH_X86_64
// ABI passes; x32 numbers and the i386 `int 0x80` entry get kBadArchErrno), then the syscall is
// looked up in an allowlist; anything not listed fails with EPERM (the default action).
#pragma once

#include <seccomp.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace ember::sandbox {

enum class SeccompPolicy {
  kStrict,  // ordinary programs (Python 3.11, busybox, glibc): no namespaces, mounts, kernel APIs
  // A fork-boot template: strict, plus exactly what putting a forked child into its own sandbox
  // takes (clone into new pid/mount/ipc/uts namespaces, mounts, pivot_root, setns into a network
  // namespace, unshare of the cgroup namespace, sethostname). Never a user or network namespace
  // of its own making. Each child installs kStrict on top before any function code runs in it.
  kTemplate,
};

// Bumped whenever a table below changes meaning, so cached programs from an older ember are
// never reused. (The cache key also includes the libseccomp version and the architecture.)
inline constexpr uint32_t kSeccompPolicyVersion = 1;

// Errno for syscalls outside the allowlist.
inline constexpr int kDeniedErrno = EPERM;
// Errno for a foreign ABI (x32, i386). ENOSYS rather than a kill: to the program it looks like
// a kernel built without that ABI, which every portable program already handles, and the
// syscall still never reaches the kernel. Killing would turn a harmless probe into a crash.
inline constexpr int kBadArchErrno = ENOSYS;

// One comparison on a syscall argument: (arg & mask) <op> value. `mask` is only used by
// SCMP_CMP_MASKED_EQ.
struct ArgCheck {
  unsigned arg;
  scmp_compare op;
  uint64_t value;
  uint64_t mask = 0;
};

// A rule: when every check holds (AND), the syscall gets `action`. Several rules for the same
// name are alternatives (OR).
struct SyscallRule {
  std::string name;
  uint32_t action = SCMP_ACT_ALLOW;
  std::vector<ArgCheck> checks;
};

struct PolicyTable {
  SeccompPolicy policy;
  std::vector<SyscallRule> rules;
  // Syscalls this policy means to refuse. Not emitted (they hit the default action); kept so
  // tests can prove each one is refused and that none slipped into `rules`.
  std::vector<std::string> denied;
};

// The table for a policy. Pure; the same value every call.
const PolicyTable& GetPolicyTable(SeccompPolicy policy);
std::string_view PolicyName(SeccompPolicy policy);

// A canonical text rendering of the table (one rule per line); hashed into the cache key and
// shown by tests when a rule changes.
std::string RenderPolicy(const PolicyTable& table);

// Adds the table's rules and attributes to a fresh libseccomp context (default action EPERM,
// bad-arch ENOSYS, native arch only). Fails naming the rule libseccomp rejected, e.g. a
// syscall name this libseccomp does not know.
Status ApplyPolicy(const PolicyTable& table, scmp_filter_ctx ctx);

// ioctl requests the strict policy allows, compared on the low 32 bits (see seccomp_policy.cc).
std::span<const uint32_t> AllowedIoctls();

}  // namespace ember::sandbox
