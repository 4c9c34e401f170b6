// memcpy/memset/memcmp for the freestanding restorer: the compiler emits calls to them for
// struct copies and zeroing even under -ffreestanding -fno-builtin, and there is no libc to
// provide them. Byte loops on purpose: the restorer copies little (page contents are mapped or
// read by the kernel), and the loops must not be turned back into calls to themselves.
#include "restorer/syscall.h"

extern "C" {

__attribute__((optimize("no-tree-loop-distribute-patterns"))) void* memcpy(void* dst,
                                                                           const void* src,
                                                                           unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  for (unsigned long i = 0; i < n; ++i) d[i] = s[i];
  return dst;
}

__attribute__((optimize("no-tree-loop-distribute-patterns"))) void* memset(void* dst, int c,
                                                                           unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  for (unsigned long i = 0; i < n; ++i) d[i] = static_cast<unsigned char>(c);
  return dst;
}

int memcmp(const void* a, const void* b, unsigned long n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (unsigned long i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

}  // extern "C"
