// What a host must share with the host that took a snapshot before the snapshot may be restored
// on it. A restored process keeps using the vDSO code it was linked against, the CPU features its
// libraries chose at startup (ifuncs) and the xsave layout of its saved registers, so a mismatch
// would crash it later in ways nobody could trace back; restore refuses up front instead.
#pragma once

#include <string_view>

#include "base/error.h"
#include "snapshot/format.h"
#include "snapshot/process_state.h"

namespace ember::snapshot {

// The CPU part of a compat record: cpuid leaves 1 and 7, XCR0 (xgetbv 0) and the xsave size for
// the enabled features (cpuid 0xD). Shared with the checkpointer (compat_capture.h).
void ReadCpuFeatures(CompatRecord* record);

// The compat record of this host for restoring a process that will run on the libc identified by
// `libc` (LibcIdentity, compat_capture.h, of the libc.so.6 in the function's image: the same
// identity the checkpointer recorded for the libc mapped in the checkpointed process, which is
// the image's, not the host's): uname release, XXH64 of this process's own [vdso] bytes, the CPU
// features and EMBER_VERSION.
Result<CompatRecord> HostCompat(std::string libc);

// Refuses (kUnsupported) when the snapshot's record does not fit `host`, naming the field and both
// values: "snapshot was taken on kernel 6.1.0-17-amd64, this host runs 6.1.0-18-amd64". Kernel,
// vDSO, XCR0, xsave size, glibc and ember versions must be equal; the CPU feature bits of the
// snapshot must be a subset of the host's (more features on the host are harmless).
Status CheckCompat(const CompatRecordView& snapshot, const CompatRecord& host);

// The stored form; fails (kInvalidArgument) when a string does not fit its field.
Result<CompatRecordView> EncodeCompat(const CompatRecord& record);
CompatRecord DecodeCompat(const CompatRecordView& view);

// A fixed-size field up to its NUL (or its whole size when it has none).
template <size_t N>
std::string_view FixedString(const char (&field)[N]) {
  size_t n = 0;
  while (n < N && field[n] != '\0') ++n;
  return {field, n};
}

}  // namespace ember::snapshot
