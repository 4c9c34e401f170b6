// The template side of fork boot (DESIGN.md, "fork boot"): once the runtime is initialized, the
// agent of a template freezes and serves only spawn requests. Each request clones a child that
// puts itself into its own sandbox (sandbox/fork_child.h) and then carries on as an ordinary
// instance's agent, on its own control socket, with the template's initialized runtime.
//
// The template stays single-threaded: a fork copies only the calling thread, so a template with
// more threads (the function started some at import) refuses to fork, with a reason naming them.
// It reaps its children and reports each exit (kChildExited); when the daemon closes the
// socket, the template exits and the kernel ends its children with it.
#pragma once

#include <optional>
#include <string>

#include "agent/protocol.h"
#include "agent/runtime.h"

namespace ember::agent {

struct TemplateOutcome {
  // Set in the template when it is done (the agent's exit code); unset in a forked child, which
  // returns fully sandboxed with its control socket on the agent's fd and must now send kReady.
  std::optional<int> exit_code;
  std::string instance_id;  // the child's
};

// Why this process cannot serve as a template ("" = it can): more than one thread, or the
// runtime's own reason. Python's check also freezes the heap (gc.freeze()).
std::string TemplateRefusal(Runtime& runtime);

// Serves spawn requests on `control_fd` until EOF. `init` is the template's init request.
TemplateOutcome RunTemplate(int control_fd, Runtime& runtime, const InitRequest& init);

}  // namespace ember::agent
