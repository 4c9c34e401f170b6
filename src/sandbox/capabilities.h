// Dropping every capability of the sandbox's first process, between clone and exec.
//
// Ordering constraints, which is why this is one function and not several:
//  * securebits and the bounding set need CAP_SETPCAP in the effective set, so they come before
//    capset() clears it;
//  * switching to a non-root uid needs CAP_SETUID/CAP_SETGID, so it sits between the bounding
//    set drop and the final capset (with SECBIT_KEEP_CAPS off, the switch clears the permitted
//    set itself; capset then zeroes whatever is left, root or not).
// The last capability number is read from /proc before clone (ReadCapLastCap) and passed in, so
// the child reads no files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"

namespace ember::sandbox {

// /proc/sys/kernel/cap_last_cap (40 on 6.x kernels).
Result<int> ReadCapLastCap(const std::string& proc_root = "/proc");

// An optional identity switch done inside DropAllCapabilities at the one point it can be.
struct IdSwitch {
  uid_t uid;
  gid_t gid;
  // setgroups(0, NULL) first; needs /proc/<pid>/setgroups to be "allow" in a user namespace.
  bool clear_groups = true;
};

// Clears the ambient set, locks securebits (NOROOT, NO_CAP_AMBIENT_RAISE, KEEP_CAPS off, all
// locked: uid 0 gains nothing at exec), drops capabilities 0..cap_last_cap from the bounding
// set, optionally switches ids, then sets effective, permitted and inheritable to zero.
// Async-signal-safe and allocation-free. Returns 0 or the errno of the failing step.
//
// `keep` (a mask of 1 << CAP_*) is for fork-boot templates only: those capabilities stay in the
// bounding, permitted and effective sets (they need them to put their children into sandboxes).
// A template keeps uid 0 of its user namespace, since a uid switch would clear them.
//
// `bounding` (a mask) says which capabilities may still be in the bounding set: only those are
// dropped from it, one prctl each. A fork-boot child passes its template's (ReadBoundingSet: 5
// capabilities, not 41 prctl calls); a bounding set never grows, so a set read earlier in this
// process or an ancestor is a superset of what is there now.
int DropAllCapabilities(int cap_last_cap, const IdSwitch* ids = nullptr, uint64_t keep = 0,
                        uint64_t bounding = ~uint64_t{0}) noexcept;

// The capabilities in this thread's bounding set (PR_CAPBSET_READ for 0..cap_last_cap).
uint64_t ReadBoundingSet(int cap_last_cap) noexcept;

// What a fork-boot template keeps: CAP_SYS_ADMIN (new pid/mount/ipc/uts namespaces, mounts,
// pivot_root, setns into a pooled network namespace, sethostname), CAP_SETUID/CAP_SETGID (the
// child's switch to the function's user), CAP_SETPCAP (the child's own drop of these) and
// CAP_DAC_OVERRIDE (overlayfs refuses to set up the child's work dir without it) and
// CAP_SYS_CHROOT (setns into a mount namespace requires it: the child's join of the namespaces
// its template made ahead, fork_shell.h; pivot_root, which CAP_SYS_ADMIN already allows, is more).
// All of them act only inside the template's user namespace.
uint64_t TemplateCapabilities();

// What ember-restore keeps through its exec, in the sandbox's user namespace only: CAP_SYS_ADMIN
// (its time namespace), CAP_CHECKPOINT_RESTORE (clone3 with set_tid for the recorded pid and
// tids, prctl(PR_SET_MM)), CAP_SYS_RESOURCE (the recorded rlimits), CAP_SETUID/CAP_SETGID (its
// switch to the function's user) and CAP_SETPCAP (its own drop of all of them, before the
// restored process runs).
uint64_t RestorerCapabilities();

}  // namespace ember::sandbox
