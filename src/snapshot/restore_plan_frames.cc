#include "snapshot/restore_plan_frames.h"

#include <signal.h>

#include <cstring>
#include <string>

namespace ember::snapshot {
namespace {

constexpr uint64_t kFpstateOffset = AlignUp(sizeof(PlanFrame), kXsaveAlign);
constexpr uint32_t kSwBytesOffset = 464;  // fxregs_state.sw_reserved

struct FpxSwBytes {  // the kernel's struct _fpx_sw_bytes
  uint32_t magic1;
  uint32_t extended_size;
  uint64_t xfeatures;
  uint32_t xstate_size;
  uint32_t padding[7];
};
static_assert(sizeof(FpxSwBytes) == 48);

}  // namespace

uint64_t ThreadFrameBytes(uint32_t xsave_size) {
  return kFpstateOffset + xsave_size + sizeof(uint32_t);
}

Status WriteThreadFrame(const ThreadRecord& t, const CompatRecordView& compat,
                        uint64_t frame_offset, uint8_t* dst) {
  std::string name = "restore plan: thread " + std::to_string(t.tid);
  if (frame_offset % kXsaveAlign != 0) {
    return Fail(ErrorCode::kInternal, name + ": frame not 64-byte aligned");
  }
  if (t.xsave_size != 0 &&
      (t.xsave_size < kLegacyXsaveBytes || t.xsave_size != compat.xsave_size)) {
    return Fail(ErrorCode::kUnsupported, name + ": xsave area of " + std::to_string(t.xsave_size) +
                                             " bytes (the image's compat record says " +
                                             std::to_string(compat.xsave_size) + ")");
  }
  PlanFrame f{};
  f.uc_flags = kUcFlags;
  // SS_ONSTACK is a state, not a setting: sigaltstack refuses it. A thread caught on its
  // alternate stack keeps the stack configured; its frame's rsp still points into it.
  int32_t ss_flags = t.altstack_flags & ~SS_ONSTACK;
  if ((ss_flags & SS_DISABLE) == 0) {
    f.ss_sp = t.altstack_sp;
    f.ss_size = t.altstack_size;
  }
  f.ss_flags = ss_flags;
  const user_regs_struct& r = t.regs;
  f.r8 = r.r8, f.r9 = r.r9, f.r10 = r.r10, f.r11 = r.r11;
  f.r12 = r.r12, f.r13 = r.r13, f.r14 = r.r14, f.r15 = r.r15;
  f.rdi = r.rdi, f.rsi = r.rsi, f.rbp = r.rbp, f.rbx = r.rbx;
  f.rdx = r.rdx, f.rax = r.rax, f.rcx = r.rcx, f.rsp = r.rsp;
  f.rip = r.rip, f.eflags = r.eflags;
  f.cs = static_cast<uint16_t>(r.cs);
  f.ss = static_cast<uint16_t>(r.ss);
  f.uc_sigmask = t.sigmask;
  if (t.xsave_size != 0) {
    f.fpstate = kPlanAddress + frame_offset + kFpstateOffset;
    uint8_t* xsave = dst + kFpstateOffset;
    std::memcpy(xsave, t.xsave.get(), t.xsave_size);
    FpxSwBytes sw{};
    sw.magic1 = kFpXstateMagic1;
    sw.extended_size = t.xsave_size + sizeof(uint32_t);
    sw.xfeatures = compat.xcr0;
    sw.xstate_size = t.xsave_size;
    std::memcpy(xsave + kSwBytesOffset, &sw, sizeof sw);
    std::memcpy(xsave + t.xsave_size, &kFpXstateMagic2, sizeof kFpXstateMagic2);
  }
  std::memcpy(dst, &f, sizeof f);
  return Ok();
}

PlanThread PlanThreadOf(const ThreadRecord& t, uint64_t frame_offset) {
  PlanThread p{};
  p.tid = t.tid;
  p.frame_offset = frame_offset;
  p.fs_base = t.fs_base;
  p.gs_base = t.gs_base;
  p.clear_child_tid = t.clear_child_tid;
  p.robust_list = t.robust_list;
  p.robust_list_len = t.robust_list_len;
  p.rseq_addr = t.rseq_addr;
  p.rseq_len = t.rseq_len;
  p.rseq_sig = t.rseq_sig;
  return p;
}

}  // namespace ember::snapshot
