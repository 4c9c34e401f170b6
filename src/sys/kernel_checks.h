// The individual kernel feature checks that ProbeKernel() (kernel_probe.cc) runs in order. Each
// tries the feature for real where a cheap attempt exists and returns what it found; none of
// them caches anything. Internal to src/sys; callers use kernel_probe.h.
#pragma once

#include <string>

#include "sys/kernel_probe.h"

namespace ember::sys::kernel_checks {

// Scratch space for the checks that need files: a temp dir with an EROFS image of one file.
struct Scratch {
  std::string dir;
  std::string image;  // "" if mkfs.erofs is missing or failed
  std::string image_error;
  ~Scratch();  // removes dir
};

// Makes the scratch dir under `parent` (an existing directory).
void PrepareScratch(Scratch& s, const std::string& parent);

// Drops the trailing newlines and spaces a /proc file ends with.
std::string Trim(std::string s);

FeatureResult ProbeUserNamespaces();
FeatureResult ProbeOverlay(const Scratch& s);
FeatureResult ProbeErofs(const Scratch& s);
// erofs_ok: whether ProbeErofs mounted the scratch image (else a tmpfs is idmapped instead).
FeatureResult ProbeIdmap(const Scratch& s, bool erofs_ok);
// Also fills out's cgroup_layout, cgroup_version and cgroup_controllers.
FeatureResult ProbeCgroups(KernelFeatures& out);
// Needs the cgroup version ProbeCgroups found.
FeatureResult ProbeCloneIntoCgroup(const KernelFeatures& k);
FeatureResult ProbeTimeNamespaces();
FeatureResult ProbePidfd();
FeatureResult ProbeSeccomp();
FeatureResult ProbeRseq();
FeatureResult ProbePrSetMmMap();
// The limits (pid_max, RLIMIT_NOFILE, max_user_namespaces): appends their features and values.
void ProbeValues(KernelFeatures& k);

}  // namespace ember::sys::kernel_checks
