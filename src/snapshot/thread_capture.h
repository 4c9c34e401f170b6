// The state of one stopped thread: registers (rewound when it sat in an interruptible syscall),
// the xsave area, signal mask, alternate signal stack, clear_child_tid, robust list and rseq.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include "base/error.h"
#include "snapshot/process_state.h"
#include "snapshot/syscall_injector.h"

namespace ember::snapshot {

// Registers as they must be restored: a thread stopped inside an interruptible syscall holds
// -ERESTART* in rax; restarting it means re-executing the `syscall` instruction (rip - 2) with
// the original number (orig_rax). -ERESTART_RESTARTBLOCK restarts through restart_syscall,
// whose kernel-side restart block does not survive a restore: there it returns -EINTR, as
// CRIU's restore does. Returns whether a restart was set up. Pure; unit-tested.
bool RewindInterruptedSyscall(user_regs_struct& regs);

// `injector` is attached to `host_tid`; `ns_tid` is the tid in the process's own pid namespace.
Result<ThreadState> CaptureThread(pid_t host_tid, pid_t ns_tid, SyscallInjector& injector);

}  // namespace ember::snapshot
