/* FPU/SSE/AVX/AVX-512 state across a checkpoint: every vector register is loaded with its own
 * pattern, then the program blocks in a raw read() syscall (the kernel keeps vector registers
 * across it) and stores them back afterwards. A restore that loses the xsave area, or restores
 * only its legacy part, hands back zeros or another pattern. The widest set the CPU has is used:
 * zmm0-31 (AVX-512F), else ymm0-15 (AVX), else xmm0-15. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "zdtm.h"

static unsigned char pattern[32 * 64] __attribute__((aligned(64)));
static unsigned char after[32 * 64] __attribute__((aligned(64)));
static char byte;

__attribute__((target("avx512f"))) static long ReadZmm(void) {
  long ret;
  __asm__ volatile(
      "vmovdqu64 0(%[p]), %%zmm0\n"
      "vmovdqu64 64(%[p]), %%zmm1\n"
      "vmovdqu64 128(%[p]), %%zmm2\n"
      "vmovdqu64 192(%[p]), %%zmm3\n"
      "vmovdqu64 256(%[p]), %%zmm4\n"
      "vmovdqu64 320(%[p]), %%zmm5\n"
      "vmovdqu64 384(%[p]), %%zmm6\n"
      "vmovdqu64 448(%[p]), %%zmm7\n"
      "vmovdqu64 512(%[p]), %%zmm8\n"
      "vmovdqu64 576(%[p]), %%zmm9\n"
      "vmovdqu64 640(%[p]), %%zmm10\n"
      "vmovdqu64 704(%[p]), %%zmm11\n"
      "vmovdqu64 768(%[p]), %%zmm12\n"
      "vmovdqu64 832(%[p]), %%zmm13\n"
      "vmovdqu64 896(%[p]), %%zmm14\n"
      "vmovdqu64 960(%[p]), %%zmm15\n"
      "vmovdqu64 1024(%[p]), %%zmm16\n"
      "vmovdqu64 1088(%[p]), %%zmm17\n"
      "vmovdqu64 1152(%[p]), %%zmm18\n"
      "vmovdqu64 1216(%[p]), %%zmm19\n"
      "vmovdqu64 1280(%[p]), %%zmm20\n"
      "vmovdqu64 1344(%[p]), %%zmm21\n"
      "vmovdqu64 1408(%[p]), %%zmm22\n"
      "vmovdqu64 1472(%[p]), %%zmm23\n"
      "vmovdqu64 1536(%[p]), %%zmm24\n"
      "vmovdqu64 1600(%[p]), %%zmm25\n"
      "vmovdqu64 1664(%[p]), %%zmm26\n"
      "vmovdqu64 1728(%[p]), %%zmm27\n"
      "vmovdqu64 1792(%[p]), %%zmm28\n"
      "vmovdqu64 1856(%[p]), %%zmm29\n"
      "vmovdqu64 1920(%[p]), %%zmm30\n"
      "vmovdqu64 1984(%[p]), %%zmm31\n"
      "syscall\n"
      "vmovdqu64 %%zmm0, 0(%[a])\n"
      "vmovdqu64 %%zmm1, 64(%[a])\n"
      "vmovdqu64 %%zmm2, 128(%[a])\n"
      "vmovdqu64 %%zmm3, 192(%[a])\n"
      "vmovdqu64 %%zmm4, 256(%[a])\n"
      "vmovdqu64 %%zmm5, 320(%[a])\n"
      "vmovdqu64 %%zmm6, 384(%[a])\n"
      "vmovdqu64 %%zmm7, 448(%[a])\n"
      "vmovdqu64 %%zmm8, 512(%[a])\n"
      "vmovdqu64 %%zmm9, 576(%[a])\n"
      "vmovdqu64 %%zmm10, 640(%[a])\n"
      "vmovdqu64 %%zmm11, 704(%[a])\n"
      "vmovdqu64 %%zmm12, 768(%[a])\n"
      "vmovdqu64 %%zmm13, 832(%[a])\n"
      "vmovdqu64 %%zmm14, 896(%[a])\n"
      "vmovdqu64 %%zmm15, 960(%[a])\n"
      "vmovdqu64 %%zmm16, 1024(%[a])\n"
      "vmovdqu64 %%zmm17, 1088(%[a])\n"
      "vmovdqu64 %%zmm18, 1152(%[a])\n"
      "vmovdqu64 %%zmm19, 1216(%[a])\n"
      "vmovdqu64 %%zmm20, 1280(%[a])\n"
      "vmovdqu64 %%zmm21, 1344(%[a])\n"
      "vmovdqu64 %%zmm22, 1408(%[a])\n"
      "vmovdqu64 %%zmm23, 1472(%[a])\n"
      "vmovdqu64 %%zmm24, 1536(%[a])\n"
      "vmovdqu64 %%zmm25, 1600(%[a])\n"
      "vmovdqu64 %%zmm26, 1664(%[a])\n"
      "vmovdqu64 %%zmm27, 1728(%[a])\n"
      "vmovdqu64 %%zmm28, 1792(%[a])\n"
      "vmovdqu64 %%zmm29, 1856(%[a])\n"
      "vmovdqu64 %%zmm30, 1920(%[a])\n"
      "vmovdqu64 %%zmm31, 1984(%[a])\n"
      : "=a"(ret)
      : "a"(0L), "D"(0L), "S"(&byte), "d"(1L), [p] "r"(pattern), [a] "r"(after)
      : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17",
        "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
        "xmm28", "xmm29", "xmm30", "xmm31");
  return ret;
}

__attribute__((target("avx"))) static long ReadYmm(void) {
  long ret;
  __asm__ volatile(
      "vmovdqu 0(%[p]), %%ymm0\n"
      "vmovdqu 32(%[p]), %%ymm1\n"
      "vmovdqu 64(%[p]), %%ymm2\n"
      "vmovdqu 96(%[p]), %%ymm3\n"
      "vmovdqu 128(%[p]), %%ymm4\n"
      "vmovdqu 160(%[p]), %%ymm5\n"
      "vmovdqu 192(%[p]), %%ymm6\n"
      "vmovdqu 224(%[p]), %%ymm7\n"
      "vmovdqu 256(%[p]), %%ymm8\n"
      "vmovdqu 288(%[p]), %%ymm9\n"
      "vmovdqu 320(%[p]), %%ymm10\n"
      "vmovdqu 352(%[p]), %%ymm11\n"
      "vmovdqu 384(%[p]), %%ymm12\n"
      "vmovdqu 416(%[p]), %%ymm13\n"
      "vmovdqu 448(%[p]), %%ymm14\n"
      "vmovdqu 480(%[p]), %%ymm15\n"
      "syscall\n"
      "vmovdqu %%ymm0, 0(%[a])\n"
      "vmovdqu %%ymm1, 32(%[a])\n"
      "vmovdqu %%ymm2, 64(%[a])\n"
      "vmovdqu %%ymm3, 96(%[a])\n"
      "vmovdqu %%ymm4, 128(%[a])\n"
      "vmovdqu %%ymm5, 160(%[a])\n"
      "vmovdqu %%ymm6, 192(%[a])\n"
      "vmovdqu %%ymm7, 224(%[a])\n"
      "vmovdqu %%ymm8, 256(%[a])\n"
      "vmovdqu %%ymm9, 288(%[a])\n"
      "vmovdqu %%ymm10, 320(%[a])\n"
      "vmovdqu %%ymm11, 352(%[a])\n"
      "vmovdqu %%ymm12, 384(%[a])\n"
      "vmovdqu %%ymm13, 416(%[a])\n"
      "vmovdqu %%ymm14, 448(%[a])\n"
      "vmovdqu %%ymm15, 480(%[a])\n"
      : "=a"(ret)
      : "a"(0L), "D"(0L), "S"(&byte), "d"(1L), [p] "r"(pattern), [a] "r"(after)
      : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  return ret;
}

static long ReadXmm(void) {
  long ret;
  __asm__ volatile(
      "movdqu 0(%[p]), %%xmm0\n"
      "movdqu 16(%[p]), %%xmm1\n"
      "movdqu 32(%[p]), %%xmm2\n"
      "movdqu 48(%[p]), %%xmm3\n"
      "movdqu 64(%[p]), %%xmm4\n"
      "movdqu 80(%[p]), %%xmm5\n"
      "movdqu 96(%[p]), %%xmm6\n"
      "movdqu 112(%[p]), %%xmm7\n"
      "movdqu 128(%[p]), %%xmm8\n"
      "movdqu 144(%[p]), %%xmm9\n"
      "movdqu 160(%[p]), %%xmm10\n"
      "movdqu 176(%[p]), %%xmm11\n"
      "movdqu 192(%[p]), %%xmm12\n"
      "movdqu 208(%[p]), %%xmm13\n"
      "movdqu 224(%[p]), %%xmm14\n"
      "movdqu 240(%[p]), %%xmm15\n"
      "syscall\n"
      "movdqu %%xmm0, 0(%[a])\n"
      "movdqu %%xmm1, 16(%[a])\n"
      "movdqu %%xmm2, 32(%[a])\n"
      "movdqu %%xmm3, 48(%[a])\n"
      "movdqu %%xmm4, 64(%[a])\n"
      "movdqu %%xmm5, 80(%[a])\n"
      "movdqu %%xmm6, 96(%[a])\n"
      "movdqu %%xmm7, 112(%[a])\n"
      "movdqu %%xmm8, 128(%[a])\n"
      "movdqu %%xmm9, 144(%[a])\n"
      "movdqu %%xmm10, 160(%[a])\n"
      "movdqu %%xmm11, 176(%[a])\n"
      "movdqu %%xmm12, 192(%[a])\n"
      "movdqu %%xmm13, 208(%[a])\n"
      "movdqu %%xmm14, 224(%[a])\n"
      "movdqu %%xmm15, 240(%[a])\n"
      : "=a"(ret)
      : "a"(0L), "D"(0L), "S"(&byte), "d"(1L), [p] "r"(pattern), [a] "r"(after)
      : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  return ret;
}

int main(void) {
  for (size_t i = 0; i < sizeof pattern; ++i) pattern[i] = (unsigned char)(i * 13 + 7);
  __builtin_cpu_init();
  int width = __builtin_cpu_supports("avx512f") ? 64 : __builtin_cpu_supports("avx") ? 32 : 16;
  int regs = width == 64 ? 32 : 16;
  zdtm_ready("vector_width=%d registers=%d", width * 8, regs);
  long n;
  do {
    n = width == 64 ? ReadZmm() : width == 32 ? ReadYmm() : ReadXmm();
  } while (n < 0);
  if (n == 0) return 2;
  size_t size = (size_t)(width * regs), first = 0;
  while (first < size && pattern[first] == after[first]) ++first;
  if (first == size) return zdtm_result(1, "");
  /* Which register and byte, for whoever has to find out why. */
  char why[96];
  snprintf(why, sizeof why, "vector register %zu byte %zu changed across the checkpoint",
           first / (size_t)width, first % (size_t)width);
  return zdtm_result(0, why);
}
