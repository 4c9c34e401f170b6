// Starting the process runtime's handler: `/bin/sh -c <command>` in the code directory, with its
// stdin and stdout on pipes to the agent and its stderr inherited (the instance's log).
#pragma once

#include <string>

#include "base/child_process.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace ember::agent {

struct HandlerProcess {
  ChildProcess child;
  UniqueFd to_child;    // the child's stdin
  UniqueFd from_child;  // the child's stdout
};

// Forks and execs the shell. Must be called while the agent is single-threaded (at init). The
// child is killed if the agent dies (PR_SET_PDEATHSIG) so it never outlives its instance on a
// host without a pid namespace. Fails naming the step (chdir, exec) and errno.
Result<HandlerProcess> SpawnHandlerProcess(const std::string& command, const std::string& code_dir);

}  // namespace ember::agent
