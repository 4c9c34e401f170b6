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
int DropAllCapabilities(int cap_last_cap, const IdSwitch* ids = nullptr) noexcept;

}  // namespace ember::sandbox
