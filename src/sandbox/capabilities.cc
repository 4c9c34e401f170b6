#include "sandbox/capabilities.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/fs.h"

namespace ember::sandbox {

Result<int> ReadCapLastCap(const std::string& proc_root) {
  const std::string path = proc_root + "/sys/kernel/cap_last_cap";
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || value < 0 || value > 63) {
    return Fail(ErrorCode::kCorrupt, path + ": not a capability number: '" + text + "'");
  }
  return static_cast<int>(value);
}

uint64_t RestorerCapabilities() {
  // CAP_SYS_TIME: the clock offsets of the restored process's time namespace (written to
  // /proc/self/timens_offsets); in the sandbox's user namespace it sets no host clock.
  return (1ULL << CAP_SYS_ADMIN) | (1ULL << CAP_CHECKPOINT_RESTORE) | (1ULL << CAP_SYS_RESOURCE) |
         (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID) | (1ULL << CAP_SETPCAP) |
         (1ULL << CAP_SYS_TIME);
}

uint64_t TemplateCapabilities() {
  return (1ULL << CAP_SYS_ADMIN) | (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID) |
         (1ULL << CAP_SETPCAP) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_SYS_CHROOT);
}

uint64_t ReadBoundingSet(int cap_last_cap) noexcept {
  uint64_t set = 0;
  for (int cap = 0; cap <= cap_last_cap && cap < 64; ++cap) {
    // 0: not in the set; -1 (EINVAL): a number this kernel does not know.
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0) set |= 1ULL << cap;
  }
  return set;
}

int DropAllCapabilities(int cap_last_cap, const IdSwitch* ids, uint64_t keep,
                        uint64_t bounding) noexcept {
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errno;

  // NO_SETUID_FIXUP stays off (locked): the kernel's clearing of caps on a uid change is wanted.
  constexpr unsigned long kSecurebits =
      SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
      SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  // A template's kept capabilities must survive its exec, where NOROOT gives root nothing: they
  // go through the ambient set, so raising it stays allowed (its children lock it).
  constexpr unsigned long kAmbientBits =
      SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  unsigned long securebits = keep != 0 ? kSecurebits & ~kAmbientBits : kSecurebits;
  if (::prctl(PR_SET_SECUREBITS, securebits, 0, 0, 0) != 0) return errno;

  for (int cap = 0; cap <= cap_last_cap; ++cap) {
    if ((keep >> cap) & 1 || (cap < 64 && ((bounding >> cap) & 1) == 0)) continue;
    // EINVAL: a number this kernel does not know (cap_last_cap from another kernel); harmless.
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }

  if (ids != nullptr) {
    if (ids->clear_groups && ::syscall(SYS_setgroups, 0, nullptr) != 0) return errno;
    // Raw syscalls: glibc's setres[ug]id broadcasts to all threads through signals (setxid),
    // which is not async-signal-safe to rely on in a child of clone.
    if (::syscall(SYS_setresgid, ids->gid, ids->gid, ids->gid) != 0) return errno;
    if (::syscall(SYS_setresuid, ids->uid, ids->uid, ids->uid) != 0) return errno;
  }

  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  for (int word = 0; word < _LINUX_CAPABILITY_U32S_3; ++word) {
    auto bits = static_cast<uint32_t>(keep >> (32 * word));
    data[word].effective = bits;
    data[word].permitted = bits;
    data[word].inheritable = bits;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  for (int cap = 0; cap <= cap_last_cap && keep != 0; ++cap) {
    if (((keep >> cap) & 1) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
      return errno;
    }
  }
  return 0;
}

}  // namespace ember::sandbox
