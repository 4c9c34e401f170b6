// A function's snapshot opened for restores (cold and warm boot, DESIGN.md "Boot modes"): the
// image (its fd becomes fd 5 of every ember-restore), and the two restore plans in sealed memfds
// (fd 4): one for warm boots and one for cold boots, which also prefetch the recorded working
// set. Opening checks the image against this host once (snapshot/compat.h), so a snapshot taken
// on another kernel or CPU is refused before any sandbox is started.
//
// Immutable once opened and shared by every restore of the function: restores on several boot
// threads at once only read it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "snapshot/image_reader.h"
#include "snapshot/restore_plan.h"

namespace ember::engine {

class SnapshotSource {
 public:
  // `image_root` is the host path of the function's image (its lower dir): the libc the
  // snapshot's process ran on is looked up there for the compat check. `settings` apply to every
  // restore (seccomp filter, user, exe path); prefetch is set per plan.
  // `agent_build` is Launcher::AgentBuild(): the snapshot must have been taken with it.
  static Result<std::shared_ptr<SnapshotSource>> Open(const std::string& path,
                                                      const std::string& image_root,
                                                      const std::string& agent_build,
                                                      snapshot::RestoreSettings settings);

  const std::string& path() const { return path_; }
  uint64_t size_bytes() const { return size_bytes_; }
  int image_fd() const { return image_.fd(); }
  int plan_fd(bool cold) const { return cold ? cold_plan_.get() : warm_plan_.get(); }
  size_t working_set_pages() const { return image_.working_set().size(); }

  // Whether the image is in the page cache (at least 90% of it): a warm boot then maps pages
  // that are already there. false when the kernel cannot say (no cachestat).
  bool Resident() const;
  // Drops the image's unmapped pages from the page cache (a forced cold boot); pages that running
  // instances map stay.
  Status Evict() const;

 private:
  explicit SnapshotSource(snapshot::ImageReader image) : image_(std::move(image)) {}

  snapshot::ImageReader image_;
  std::string path_;
  uint64_t size_bytes_ = 0;
  UniqueFd warm_plan_, cold_plan_;
};

// The libc identity (snapshot/compat_capture.h) of the libc.so.6 the image's process mapped,
// looked up under `image_root`.
Result<std::string> ImageLibcIdentity(const snapshot::ImageReader& image,
                                      const std::string& image_root);

}  // namespace ember::engine
