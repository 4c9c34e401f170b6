// Placeholder until the run command lands.
#include "cli/command.h"

namespace ember::cli {

void RegisterRunCommand(CLI::App& app, GlobalOptions& global, int* exit_code) {
  (void)app;
  (void)global;
  (void)exit_code;
}

}  // namespace ember::cli
