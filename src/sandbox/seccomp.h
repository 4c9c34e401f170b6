// Seccomp programs: compiled from a policy table (seccomp_policy.h) once, cached on disk, and
// installed between clone and exec without allocating.
//
// Cache file <cache_dir>/<policy_hash>.bpf, little-endian, written atomically:
//
//   offset  size  field
//   0       8     magic "EMBRBPF1"
//   8       8     policy key (the 64-bit value spelled in hex by policy_hash)
//   16      4     instruction count n, 1 ≤ n ≤ BPF_MAXINSNS
//   20      4     reserved, 0
//   24      8     XXH64 (seed 0) of the n instructions
//   32      8·n   struct sock_filter[n], as the kernel takes it
//
// A file that fails any check (size not 32 + 8·n, bad magic, foreign key, bad count, checksum)
// is treated as absent: the program is recompiled and the file rewritten.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "sandbox/seccomp_policy.h"

namespace ember::sandbox {

struct BpfProgram {
  std::vector<sock_filter> instructions;
  // Hex of the 64-bit key over the policy (its name and version and the executable's build id,
  // or, without a build id, the rendered table), libseccomp's version and the arch.
  std::string policy_hash;
};

// The cache key for a policy on this host; pure apart from asking libseccomp its version and
// reading the executable's build id (once).
std::string PolicyHash(SeccompPolicy policy);

// Builds the filter with libseccomp and exports it (through a memfd) as raw BPF.
Result<BpfProgram> CompileSeccomp(SeccompPolicy policy);

// The cached program for `policy`, compiling and storing it on a miss or a bad file.
Result<BpfProgram> LoadSeccomp(SeccompPolicy policy, const std::string& cache_dir);
// Where LoadSeccomp keeps `program` in `cache_dir`.
std::string SeccompCachePath(const std::string& cache_dir, const BpfProgram& program);

// Cache file (de)serialisation; exposed for tests.
std::string SerializeBpf(const BpfProgram& program);
Result<BpfProgram> ParseBpf(std::string_view data, const std::string& expected_hash);

// Sets no_new_privs, then installs `program` as a seccomp filter on the calling thread (flags 0:
// the caller is the single-threaded child between clone and exec). Async-signal-safe and
// allocation-free. Returns 0 or the errno of the failing step.
int InstallSeccomp(const BpfProgram& program) noexcept;

}  // namespace ember::sandbox
