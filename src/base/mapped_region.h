// Move-only owner of an mmap'ed region; unmaps it on destruction.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

#include "base/error.h"

namespace ember {

class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(void* addr, size_t size) : addr_(addr), size_(size) {}
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  MappedRegion(MappedRegion&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~MappedRegion() { reset(); }

  // mmap(nullptr, size, prot, flags, fd, offset) with the failure named.
  static Result<MappedRegion> Map(size_t size, int prot, int flags, int fd = -1, off_t offset = 0);
  // A region of a whole file, read-only and shared.
  static Result<MappedRegion> MapFileReadOnly(int fd);

  void* data() const { return addr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(addr_);
  }
  size_t size() const { return size_; }
  bool valid() const { return addr_ != nullptr; }

  void reset() {
    if (addr_ != nullptr && size_ != 0) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ember
