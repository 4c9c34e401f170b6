// A classic-BPF interpreter for seccomp programs, so tests can ask "what does this filter do for
// syscall N with these arguments on arch A" without installing it — in particular for inputs the
// running kernel cannot produce (a foreign ABI the kernel was built without, 64-bit garbage in
// the high half of an int argument). Mirrors the kernel's checks: it refuses what the kernel's
// seccomp_check_filter would (unknown opcodes, jumps out of range, out-of-bounds loads).
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace ember::sandbox {

// The seccomp action word the program returns, or nullopt if the program is malformed.
inline std::optional<uint32_t> EvaluateSeccomp(const std::vector<sock_filter>& prog,
                                               const seccomp_data& data) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  const size_t n = prog.size();
  for (size_t pc = 0; pc < n; ++pc) {
    const sock_filter& in = prog[pc];
    const uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
        if (in.code == (BPF_LD | BPF_W | BPF_ABS)) {
          if (in.k % 4 != 0 || in.k + 4 > sizeof(seccomp_data)) return std::nullopt;
          std::memcpy(&a, reinterpret_cast<const char*>(&data) + in.k, 4);
        } else if (in.code == (BPF_LD | BPF_IMM)) {
          a = in.k;
        } else if (in.code == (BPF_LD | BPF_MEM) && in.k < BPF_MEMWORDS) {
          a = mem[in.k];
        } else {
          return std::nullopt;
        }
        break;
      case BPF_LDX:
        if (in.code == (BPF_LDX | BPF_IMM)) {
          x = in.k;
        } else if (in.code == (BPF_LDX | BPF_MEM) && in.k < BPF_MEMWORDS) {
          x = mem[in.k];
        } else {
          return std::nullopt;
        }
        break;
      case BPF_ST:
      case BPF_STX:
        if (in.k >= BPF_MEMWORDS) return std::nullopt;
        mem[in.k] = BPF_CLASS(in.code) == BPF_ST ? a : x;
        break;
      case BPF_ALU:
        switch (BPF_OP(in.code)) {
          case BPF_ADD:
            a += src;
            break;
          case BPF_SUB:
            a -= src;
            break;
          case BPF_MUL:
            a *= src;
            break;
          case BPF_AND:
            a &= src;
            break;
          case BPF_OR:
            a |= src;
            break;
          case BPF_XOR:
            a ^= src;
            break;
          case BPF_LSH:
            a = src < 32 ? a << src : 0;
            break;
          case BPF_RSH:
            a = src < 32 ? a >> src : 0;
            break;
          case BPF_NEG:
            a = -a;
            break;
          case BPF_DIV:
            if (src == 0) return std::nullopt;
            a /= src;
            break;
          default:
            return std::nullopt;
        }
        break;
      case BPF_JMP: {
        if (BPF_OP(in.code) == BPF_JA) {
          if (pc + 1 + in.k >= n) return std::nullopt;
          pc += in.k;
          break;
        }
        bool taken;
        switch (BPF_OP(in.code)) {
          case BPF_JEQ:
            taken = a == src;
            break;
          case BPF_JGT:
            taken = a > src;
            break;
          case BPF_JGE:
            taken = a >= src;
            break;
          case BPF_JSET:
            taken = (a & src) != 0;
            break;
          default:
            return std::nullopt;
        }
        const size_t offset = taken ? in.jt : in.jf;
        if (pc + 1 + offset >= n) return std::nullopt;
        pc += offset;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(in.code) == BPF_A ? a : in.k;
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX) {
          x = a;
        } else {
          a = x;
        }
        break;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;  // fell off the end: the kernel rejects such a program
}

// Whether the kernel's seccomp action cache (Linux 5.11+, seccomp_is_const_allow in
// kernel/seccomp.c) proves syscall `nr` allowed on `arch` when the filter is installed: it
// emulates the program knowing only the number and the architecture, and gives up at any load
// of an argument or the instruction pointer and at any instruction outside the few it models.
// A syscall it proves allowed never runs the filter again in that process.
inline bool KernelCachesAllow(const std::vector<sock_filter>& prog, uint32_t nr, uint32_t arch) {
  uint32_t reg = 0;
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& in = prog[pc];
    switch (in.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (in.k == offsetof(seccomp_data, nr)) {
          reg = nr;
        } else if (in.k == offsetof(seccomp_data, arch)) {
          reg = arch;
        } else {
          return false;
        }
        break;
      case BPF_RET | BPF_K:
        return in.k == SECCOMP_RET_ALLOW;
      case BPF_JMP | BPF_JA:
        pc += in.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += reg == in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += reg >= in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += reg > in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (reg & in.k) != 0 ? in.jt : in.jf;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        reg &= in.k;
        break;
      default:
        return false;
    }
  }
  return false;
}

}  // namespace ember::sandbox
