#include "snapshot/compat_capture.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "snapshot/compat.h"

namespace ember::snapshot {
namespace {

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

Result<std::string> AgentBuildMark(const std::string& agent_dir) {
  std::string mark = EMBER_VERSION "+";
  for (const char* file : {"/ember-agent", "/ember-python.so"}) {
    EMBER_ASSIGN_OR_RETURN(std::string id, ReadGnuBuildId(agent_dir + file));
    if (mark.back() != '+') mark += '.';
    mark += id.empty() ? "none" : id.substr(0, 12);
  }
  return mark;
}

Result<std::string> LibcIdentity(const std::string& host_path, const std::string& shown_path) {
  EMBER_ASSIGN_OR_RETURN(std::string build_id, ReadGnuBuildId(host_path));
  if (!build_id.empty()) return build_id;
  struct stat st {};
  if (::stat(host_path.c_str(), &st) != 0) return FailErrno("stat " + host_path);
  return shown_path + ":" + std::to_string(st.st_size);
}

Result<CompatRecord> CaptureCompat(const std::vector<uint8_t>& vdso,
                                   const std::vector<MemoryArea>& areas, const SandboxRoot& root) {
  CompatRecord c;
  utsname uts;
  if (::uname(&uts) != 0) return FailErrno("uname");
  c.kernel_release = uts.release;
  c.vdso_hash = XXH64(vdso.data(), vdso.size(), 0);
  c.vdso_size = vdso.size();
  ReadCpuFeatures(&c);
  c.ember_version = EMBER_VERSION;
  std::string base = root.host_path == "/" ? "" : root.host_path;
  for (const MemoryArea& area : areas) {
    if ((area.kind != AreaKind::kFilePrivate && area.kind != AreaKind::kFileShared) ||
        !IsLibc(area.path)) {
      continue;
    }
    EMBER_ASSIGN_OR_RETURN(c.glibc_version, LibcIdentity(base + area.path, area.path));
    break;
  }
  return c;
}

}  // namespace ember::snapshot
