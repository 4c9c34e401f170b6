// The rt_sigreturn frames of a restore plan: each thread resumes through the kernel's own
// signal-return path, which loads every general register, the FPU/SSE/AVX state (xsave), the
// signal mask and the alternate signal stack in one syscall. The frame is built here, on the
// host, so the restorer only points rsp at it.
//
// The xsave area as ptrace returns it (NT_X86_XSTATE) is not what a signal frame holds: ptrace
// puts XCR0 into the software-reserved bytes (464..511 of the legacy area) where the kernel
// expects struct _fpx_sw_bytes, and a signal frame ends with FP_XSTATE_MAGIC2 after the area.
// Without both, the kernel falls back to restoring only the legacy x87/SSE state and every AVX
// register comes back zero (host-facts, item 1).
#pragma once

#include <cstdint>

#include "base/error.h"
#include "snapshot/format.h"
#include "snapshot/restore_plan_format.h"

namespace ember::snapshot {

inline constexpr uint32_t kFpXstateMagic1 = 0x46505853;
inline constexpr uint32_t kFpXstateMagic2 = 0x46505845;
inline constexpr uint32_t kLegacyXsaveBytes = 512 + 64;  // fxsave area + xsave header
inline constexpr uint64_t kUcFlags = 0x1 | 0x2 | 0x4;    // UC_FP_XSTATE | UC_SIGCONTEXT_SS |
                                                         // UC_STRICT_RESTORE_SS

// Bytes a thread's frame takes in the plan (64-aligned start): PlanFrame, pad, xsave, magic2.
uint64_t ThreadFrameBytes(uint32_t xsave_size);
// Writes the frame of `thread` at `dst`, which is at plan offset `frame_offset` (the fpstate
// pointer is absolute: kPlanAddress + offset).
Status WriteThreadFrame(const ThreadRecord& thread, const CompatRecordView& compat,
                        uint64_t frame_offset, uint8_t* dst);
PlanThread PlanThreadOf(const ThreadRecord& thread, uint64_t frame_offset);

}  // namespace ember::snapshot
