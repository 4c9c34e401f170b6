// The agent's life on its control socket: one init handshake, then invocations until the daemon
// closes the connection. See docs/protocol.md for the sequence.
#pragma once

namespace ember::agent {

// ember-agent's exit codes.
enum AgentExit : int {
  kExitClosed = 0,         // the daemon closed the connection
  kExitUnusable = 1,       // init failed (kInitFailed was sent), or the runtime broke for good
                           // (the process runtime's child exited; the error was sent)
  kExitBadStart = 2,       // fd 3 unusable, or the first frame was not a valid kInit
  kExitProtocolError = 3,  // a malformed or unexpected frame after init, or a failed write
};

// Runs the agent on `control_fd` and returns the exit code. Never throws.
int RunAgent(int control_fd);

}  // namespace ember::agent
