// The compat record: what must be the same where the snapshot is restored (kernel build and its
// vDSO bytes, CPU features and xsave layout, the glibc build whose data is in the image).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "snapshot/process_state.h"
#include "snapshot/root_path.h"

namespace ember::snapshot {

// `vdso` is the bytes of the process's [vdso]; `areas` its memory areas (the libc.so.6 mapped
// there is looked up under `root`).
Result<CompatRecord> CaptureCompat(const std::vector<uint8_t>& vdso,
                                   const std::vector<MemoryArea>& areas, const SandboxRoot& root);

// The GNU build-id of an ELF file as lower-case hex, or "" if it has none.
Result<std::string> ReadGnuBuildId(const std::string& path);

// What a snapshot records as its compat ember_version: "VERSION+AGENT.PLUGIN", the short GNU
// build-ids of `agent_dir`'s ember-agent and ember-python.so. The restored process maps those
// very files, so a snapshot is only good with the build it was taken with; short ids, so that
// the mark fits the record's field.
Result<std::string> AgentBuildMark(const std::string& agent_dir);

// What the compat record calls a libc (its glibc_version field): the GNU build-id of the file at
// `host_path`, or "<shown_path>:<size>" for a libc built without one.
Result<std::string> LibcIdentity(const std::string& host_path, const std::string& shown_path);

}  // namespace ember::snapshot
