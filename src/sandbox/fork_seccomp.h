// Fork boot: the seccomp filter a child of a template stacks on the template's.
//
// A child inherits the template's filter (policy `template`: strict plus what sandboxing a child
// takes: mount syscalls, sethostname, clone into new pid/mount/ipc/uts namespaces, unshare of the
// cgroup namespace, setns into a network namespace and into the mount, ipc and uts namespaces
// made ahead, fork_shell.h). Seccomp stacks filters and the most
// restrictive answer wins, so the child does not need all of strict again on top (≈450 BPF
// instructions, whose conversion and JIT took ≈150 µs of every fork boot): it needs a filter
// that refuses exactly what `template` allows beyond strict, and allows the rest, which the
// template's filter below decides. Together the two answer every syscall as strict alone does,
// with strict's errno (fork_seccomp_test.cc evaluates both stacks against strict for every
// syscall number, ABI and the flags that matter).
#pragma once

#include "sandbox/seccomp.h"

namespace ember::sandbox {

// The template -> strict filter: EPERM (strict's default errno) for the syscalls `template`
// adds, for clone with a namespace flag, and for unshare and setns; ENOSYS for a foreign ABI
// (as both policies); allow for everything else, x32 numbers included (the template's filter
// refuses those as strict does).
BpfProgram TemplateToStrictFilter();

}  // namespace ember::sandbox
