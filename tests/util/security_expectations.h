// What tests/util/security_probe.c must print inside any sandbox, whatever booted it: each
// escape attempt and the errno it must fail with. Shared by the sandbox-core security suite
// (tests/integration/security_test.cc, `ember run`) and the fork-boot one
// (tests/e2e/fork_security_test.cc, instances forked from a template), so that both hold every
// sandbox to the same list.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

namespace ember::testing {

// "NAME errno=ENAME" / "NAME ok" lines into NAME -> "ENAME" / "ok"; "#" lines are notes.
inline std::map<std::string, std::string> ParseChecks(const std::string& out) {
  std::map<std::string, std::string> checks;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.find(' ');
    std::string result = line.substr(space + 1);
    if (result.rfind("errno=", 0) == 0) result = result.substr(6);
    checks[line.substr(0, space)] = result;
  }
  return checks;
}

inline const std::set<std::string> kAnyErrno = {"*"};

// What each escape attempt must fail with. Seccomp answers EPERM for refused syscalls and
// ENOSYS for clone3 and foreign ABIs (x32, int 0x80); "ENOENT" on an observation means nothing
// of the host was found.
inline const std::map<std::string, std::set<std::string>>& Expected() {
  static const std::map<std::string, std::set<std::string>> expected = {
      {"mount_tmpfs", {"EPERM"}},
      {"umount_root", {"EPERM"}},
      {"unshare_user", {"EPERM"}},
      {"unshare_mnt", {"EPERM"}},
      {"clone_newuser", {"EPERM"}},
      {"clone3", {"ENOSYS"}},
      {"setns_mnt", {"EPERM"}},
      {"setns_net", {"EPERM"}},
      {"setns_pid", {"EPERM"}},
      {"setns_user", {"EPERM"}},
      {"host_namespaces_via_proc", {"ENOENT"}},
      {"host_namespaces_pinned", {"ENOENT"}},
      {"host_pids_visible", {"ENOENT"}},
      {"ptrace_pid1", {"EPERM"}},
      {"ptrace_scan", {"EPERM", "ESRCH"}},
      {"proc1_root_is_host", {"ENOENT"}},
      {"process_vm_readv", {"EPERM"}},
      {"init_module", {"EPERM"}},
      {"finit_module", {"EPERM"}},
      {"kexec_load", {"EPERM"}},
      {"keyctl", {"EPERM"}},
      {"bpf", {"EPERM"}},
      {"perf_event_open", {"EPERM"}},
      {"userfaultfd", {"EPERM"}},
      {"io_uring_setup", {"EPERM"}},
      {"socket_raw", {"EPERM"}},
      {"socket_packet", {"EPERM"}},
      {"proc_sys_hostname", {"EROFS", "EACCES"}},
      {"reboot", {"EPERM"}},
      {"chroot_escape", {"EPERM"}},
      {"x32_getpid", {"ENOSYS"}},
      {"int80_getpid", {"ENOSYS"}},
      {"open_by_handle_at", {"EPERM"}},
      {"name_to_handle_at", {"EPERM"}},
      {"tiocsti_stdin", {"EPERM"}},
      {"tiocsti_devtty", kAnyErrno},  // no controlling tty (ENXIO) or EPERM if one opens
      {"dev_mem", {"ENOENT"}},
      {"dev_kmem", {"ENOENT"}},
      {"dev_port", {"ENOENT"}},
      {"dev_kmsg", {"ENOENT"}},
      {"mknod_block", {"EPERM"}},
  };
  return expected;
}

// Checks a probe's output against Expected(): every check present and refused with a listed
// errno, and no check the table does not know.
inline void ExpectEveryEscapeRefused(const std::string& out) {
  auto got = ParseChecks(out);
  for (const auto& [name, allowed] : Expected()) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << name << ": no result line\n" << out;
      continue;
    }
    EXPECT_NE(it->second, "ok") << name << " SUCCEEDED inside the sandbox\n" << out;
    if (allowed != kAnyErrno) {
      EXPECT_TRUE(allowed.count(it->second))
          << name << " failed with " << it->second << ", expected one of the listed errnos\n"
          << out;
    }
  }
  for (const auto& [name, result] : got) {
    EXPECT_TRUE(Expected().count(name)) << "unlisted check " << name << " = " << result;
  }
}

}  // namespace ember::testing
