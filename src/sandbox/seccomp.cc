#include "sandbox/seccomp.h"

#include <elf.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "base/log.h"
#include "base/scope_exit.h"

namespace ember::sandbox {
namespace {

constexpr char kMagic[8] = {'E', 'M', 'B', 'R', 'B', 'P', 'F', '1'};
constexpr size_t kHeaderSize = 32;
static_assert(sizeof(sock_filter) == 8);

// The GNU build id of the running executable, from its PT_NOTE segments in memory; empty if it
// was linked without one.
std::string ExecutableBuildId() {
  std::string id;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) -> int {
        // The first object is the executable itself.
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
          if (phdr.p_type != PT_NOTE) continue;
          // NOLINTNEXTLINE(performance-no-int-to-ptr): the loader gives the segment's address
          const char* note = reinterpret_cast<const char*>(info->dlpi_addr + phdr.p_vaddr);
          const char* end = note + phdr.p_memsz;
          while (note + sizeof(ElfW(Nhdr)) <= end) {
            ElfW(Nhdr) header;
            std::memcpy(&header, note, sizeof header);
            const char* name = note + sizeof header;
            const char* desc = name + ((header.n_namesz + 3) & ~3U);
            if (desc + header.n_descsz > end) break;
            if (header.n_type == NT_GNU_BUILD_ID && header.n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0) {
              auto* hex = static_cast<std::string*>(out);
              for (uint32_t b = 0; b < header.n_descsz; ++b) {
                char byte[3];
                std::snprintf(byte, sizeof byte, "%02x", static_cast<unsigned char>(desc[b]));
                hex->append(byte);
              }
              return 1;
            }
            note = desc + ((header.n_descsz + 3) & ~3U);
          }
        }
        return 1;
      },
      &id);
  return id;
}

// What the compiled program depends on: the policy table and libseccomp's code generation. Both
// are fixed by the executable when it carries a build id (the tables are compiled in, libseccomp
// is linked statically or named by its version below), so that is what the key hashes then:
// rendering the tables takes longer (≈100 us in a fresh process) than the rest of a cache hit.
uint64_t PolicyKey(SeccompPolicy policy) {
  const scmp_version* v = seccomp_version();
  static const std::string build_id = ExecutableBuildId();
  std::string material = build_id.empty() ? RenderPolicy(GetPolicyTable(policy))
                                          : "policy " + std::string(PolicyName(policy)) + " v" +
                                                std::to_string(kSeccompPolicyVersion) +
                                                "\nexecutable build id " + build_id + "\n";
  material += "libseccomp " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
              std::to_string(v->micro) + "\narch " + std::to_string(seccomp_arch_native()) + "\n";
  return XXH64(material.data(), material.size(), 0);
}

std::string Hex(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

template <typename T>
void Put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}
template <typename T>
T Get(std::string_view data, size_t offset) {
  T value;
  std::memcpy(&value, data.data() + offset, sizeof value);
  return value;
}

}  // namespace

std::string PolicyHash(SeccompPolicy policy) { return Hex(PolicyKey(policy)); }

Result<BpfProgram> CompileSeccomp(SeccompPolicy policy) {
  const std::string what = "compile seccomp policy " + std::string(PolicyName(policy));
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(kDeniedErrno));
  if (ctx == nullptr) return Fail(ErrorCode::kInternal, what + ": seccomp_init failed");
  ScopeExit release_ctx([ctx] { seccomp_release(ctx); });
  EMBER_TRY_CTX(ApplyPolicy(GetPolicyTable(policy), ctx), what);

  int memfd = ::memfd_create("ember-seccomp", MFD_CLOEXEC);
  if (memfd < 0) return FailErrno(what + ": memfd_create");
  UniqueFd fd(memfd);
  if (int rc = seccomp_export_bpf(ctx, fd.get()); rc != 0) {
    return FailErrno(what + ": seccomp_export_bpf", -rc);
  }
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return FailErrno(what + ": lseek memfd");
  if (size == 0 || size % sizeof(sock_filter) != 0 || size / sizeof(sock_filter) > BPF_MAXINSNS) {
    return Fail(ErrorCode::kInternal,
                what + ": libseccomp exported " + std::to_string(size) + " bytes, not a program");
  }
  BpfProgram program;
  program.policy_hash = PolicyHash(policy);
  program.instructions.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  ssize_t n = ::pread(fd.get(), program.instructions.data(), static_cast<size_t>(size), 0);
  if (n != size) return FailErrno(what + ": read exported program");
  return program;
}

std::string SerializeBpf(const BpfProgram& program) {
  const size_t body = program.instructions.size() * sizeof(sock_filter);
  std::string out(kMagic, sizeof kMagic);
  Put<uint64_t>(out, std::strtoull(program.policy_hash.c_str(), nullptr, 16));
  Put<uint32_t>(out, static_cast<uint32_t>(program.instructions.size()));
  Put<uint32_t>(out, 0);
  Put<uint64_t>(out, XXH64(program.instructions.data(), body, 0));
  out.append(reinterpret_cast<const char*>(program.instructions.data()), body);
  return out;
}

Result<BpfProgram> ParseBpf(std::string_view data, const std::string& expected_hash) {
  auto corrupt = [](const std::string& why) { return Fail(ErrorCode::kCorrupt, why); };
  if (data.size() < kHeaderSize)
    return corrupt("truncated header (" + std::to_string(data.size()) + " bytes)");
  if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) return corrupt("bad magic");
  if (Hex(Get<uint64_t>(data, 8)) != expected_hash)
    return corrupt("written for another policy key");
  uint32_t count = Get<uint32_t>(data, 16);
  if (count == 0 || count > BPF_MAXINSNS)
    return corrupt("bad instruction count " + std::to_string(count));
  if ((data.size() - kHeaderSize) % sizeof(sock_filter) != 0 ||
      data.size() != kHeaderSize + size_t{count} * sizeof(sock_filter)) {
    return corrupt("size " + std::to_string(data.size()) + " does not match " +
                   std::to_string(count) + " instructions");
  }
  std::string_view body = data.substr(kHeaderSize);
  if (XXH64(body.data(), body.size(), 0) != Get<uint64_t>(data, 24))
    return corrupt("checksum mismatch");
  BpfProgram program;
  program.policy_hash = expected_hash;
  program.instructions.resize(count);
  std::memcpy(program.instructions.data(), body.data(), body.size());
  return program;
}

std::string SeccompCachePath(const std::string& cache_dir, const BpfProgram& program) {
  return cache_dir + "/" + program.policy_hash + ".bpf";
}

Result<BpfProgram> LoadSeccomp(SeccompPolicy policy, const std::string& cache_dir) {
  const std::string hash = PolicyHash(policy);
  const std::string path = cache_dir + "/" + hash + ".bpf";
  if (PathExists(path)) {
    auto data = ReadFile(path);
    if (data) {
      auto parsed = ParseBpf(*data, hash);
      if (parsed) return parsed;
      spdlog::warn("seccomp cache {}: {}; recompiling", path, parsed.error().ToString());
    } else {
      spdlog::warn("seccomp cache: {}; recompiling", data.error().ToString());
    }
  }
  EMBER_ASSIGN_OR_RETURN(BpfProgram program, CompileSeccomp(policy));
  // Concurrent embers may race here; both write the same bytes and rename is atomic.
  EMBER_TRY_CTX(MakeDirs(cache_dir), "seccomp cache");
  EMBER_TRY_CTX(WriteFileAtomic(path, SerializeBpf(program)), "seccomp cache");
  return program;
}

int InstallSeccomp(const BpfProgram& program) noexcept {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  struct sock_fprog fprog;
  fprog.len = static_cast<unsigned short>(program.instructions.size());
  fprog.filter = const_cast<sock_filter*>(program.instructions.data());
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return errno;
  return 0;
}

}  // namespace ember::sandbox
