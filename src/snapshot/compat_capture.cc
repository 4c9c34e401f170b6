#include "snapshot/compat_capture.h"

#include <cpuid.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>

#include "base/fs.h"

namespace ember::snapshot {
namespace {

uint64_t Xgetbv0() {
  uint32_t eax = 0, edx = 0;
  asm volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t{edx} << 32) | eax;
}

Status PreadExact(int fd, void* buf, size_t size, uint64_t offset, const std::string& path) {
  ssize_t n = ::pread(fd, buf, size, static_cast<off_t>(offset));
  if (n != static_cast<ssize_t>(size)) {
    return Fail(ErrorCode::kCorrupt, "read " + path + ": truncated ELF file", n < 0 ? errno : 0);
  }
  return Ok();
}

bool IsLibc(const std::string& path) {
  std::string base = path.substr(path.rfind('/') + 1);
  return base.starts_with("libc.so.6") || (base.starts_with("libc-") && base.ends_with(".so"));
}

}  // namespace

Result<std::string> ReadGnuBuildId(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDONLY));
  Elf64_Ehdr eh;
  EMBER_TRY(PreadExact(fd.get(), &eh, sizeof eh, 0, path));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256) {
    return Fail(ErrorCode::kCorrupt, path + " is not a 64-bit ELF file");
  }
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    EMBER_TRY(PreadExact(fd.get(), &ph, sizeof ph, eh.e_phoff + i * sizeof ph, path));
    if (ph.p_type != PT_NOTE || ph.p_filesz > 65536) continue;
    std::vector<uint8_t> notes(ph.p_filesz);
    EMBER_TRY(PreadExact(fd.get(), notes.data(), notes.size(), ph.p_offset, path));
    size_t at = 0;
    auto align4 = [](size_t n) { return (n + 3) & ~size_t{3}; };
    while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
      Elf64_Nhdr nh;
      std::memcpy(&nh, notes.data() + at, sizeof nh);
      size_t name_at = at + sizeof nh;
      size_t desc_at = name_at + align4(nh.n_namesz);
      if (desc_at + nh.n_descsz > notes.size()) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
        std::string hex;
        char byte[3];
        for (size_t k = 0; k < nh.n_descsz; ++k) {
          std::snprintf(byte, sizeof byte, "%02x", notes[desc_at + k]);
          hex += byte;
        }
        return hex;
      }
      at = desc_at + align4(nh.n_descsz);
    }
  }
  return std::string();
}

Result<CompatRecord> CaptureCompat(const std::vector<uint8_t>& vdso,
                                   const std::vector<MemoryArea>& areas, const SandboxRoot& root) {
  CompatRecord c;
  utsname uts;
  if (::uname(&uts) != 0) return FailErrno("uname");
  c.kernel_release = uts.release;
  c.vdso_hash = XXH64(vdso.data(), vdso.size(), 0);
  c.vdso_size = vdso.size();
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    c.cpuid_1_ecx = ecx;
    c.cpuid_1_edx = edx;
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    c.cpuid_7_ebx = ebx;
    c.cpuid_7_ecx = ecx;
    c.cpuid_7_edx = edx;
  }
  // OSXSAVE (leaf 1 ecx bit 27): the kernel enabled xsave, so xgetbv and leaf 0xD are valid.
  if (c.cpuid_1_ecx & (1u << 27)) {
    c.xcr0 = Xgetbv0();
    // Leaf 0xD subleaf 0, ebx: the xsave area size for the features enabled in XCR0.
    if (__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx)) c.xsave_size = ebx;
  }
  c.ember_version = EMBER_VERSION;
  std::string base = root.host_path == "/" ? "" : root.host_path;
  for (const MemoryArea& area : areas) {
    if ((area.kind != AreaKind::kFilePrivate && area.kind != AreaKind::kFileShared) ||
        !IsLibc(area.path)) {
      continue;
    }
    std::string host_path = base + area.path;
    EMBER_ASSIGN_OR_RETURN(auto build_id, ReadGnuBuildId(host_path));
    if (!build_id.empty()) {
      c.glibc_version = build_id;
    } else {
      struct stat st;
      if (::stat(host_path.c_str(), &st) != 0) return FailErrno("stat " + host_path);
      c.glibc_version = area.path + ":" + std::to_string(st.st_size);
    }
    break;
  }
  return c;
}

}  // namespace ember::snapshot
