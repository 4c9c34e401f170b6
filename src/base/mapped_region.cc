#include "base/mapped_region.h"

#include <sys/stat.h>

#include <string>

namespace ember {

Result<MappedRegion> MappedRegion::Map(size_t size, int prot, int flags, int fd, off_t offset) {
  void* addr = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (addr == MAP_FAILED) return FailErrno("mmap " + std::to_string(size) + " bytes");
  return MappedRegion(addr, size);
}

Result<MappedRegion> MappedRegion::MapFileReadOnly(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno("fstat");
  if (st.st_size == 0) return MappedRegion();
  return Map(static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
}

}  // namespace ember
