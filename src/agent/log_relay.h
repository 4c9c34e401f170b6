// A fork-boot instance's stdout and stderr are its template's one log socket, on which the daemon
// tells writers apart by the pid each write carries (SCM_CREDENTIALS; engine/template.h). A
// subprocess that writes and exits before the daemon reads would be a pid nobody can place any
// more, so a forked instance relays: fds 1 and 2 become a pipe that one thread of the agent
// copies to the socket, and every byte arrives with the instance's own pid.
#pragma once

#include "base/error.h"

namespace ember::agent {

// Puts the relay between fds 1/2 and what they are now. On failure (no thread or pipe to be had)
// fds 1 and 2 stay as they were.
Status StartLogRelay();

// At the agent's exit: closes the relay's writing ends and waits (briefly) for the thread to pass
// on what is still in the pipe. A no-op without a relay.
void FinishLogRelay();

}  // namespace ember::agent
