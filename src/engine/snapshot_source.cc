#include "engine/snapshot_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snapshot/compat.h"
#include "snapshot/compat_capture.h"

namespace ember::engine {
namespace {

// cachestat(2) (Linux 6.5): Debian 12's headers predate it.
constexpr long kSysCachestat = 451;
struct CachestatRange {
  uint64_t off, len;
};
struct Cachestat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

}  // namespace

Result<std::string> ImageLibcIdentity(const snapshot::ImageReader& image,
                                      const std::string& image_root) {
  for (const snapshot::AreaRecord& area : image.areas()) {
    std::string_view path = area.path.view();
    if (path.ends_with("/libc.so.6") || path.find("/libc-2.") != std::string_view::npos) {
      return snapshot::LibcIdentity(image_root + std::string(path), std::string(path));
    }
  }
  // A static program maps no libc: nothing of one is in the image to mismatch.
  return std::string("static");
}

Result<std::shared_ptr<SnapshotSource>> SnapshotSource::Open(const std::string& path,
                                                             const std::string& image_root,
                                                             const std::string& agent_build,
                                                             snapshot::RestoreSettings settings) {
  EMBER_ASSIGN_OR_RETURN(auto image, snapshot::ImageReader::Open(path));
  std::shared_ptr<SnapshotSource> source(new SnapshotSource(std::move(image)));
  source->path_ = path;
  struct stat st {};
  if (::fstat(source->image_.fd(), &st) != 0) return FailErrno("stat snapshot " + path);
  source->size_bytes_ = static_cast<uint64_t>(st.st_size);

  EMBER_ASSIGN_OR_RETURN(std::string libc, ImageLibcIdentity(source->image_, image_root));
  EMBER_ASSIGN_OR_RETURN(auto host, snapshot::HostCompat(libc));
  host.ember_version = agent_build;
  EMBER_TRY_CTX(snapshot::CheckCompat(source->image_.compat(), host), "snapshot " + path);

  for (bool cold : {false, true}) {
    settings.prefetch_working_set = cold;
    EMBER_ASSIGN_OR_RETURN(auto plan, snapshot::BuildRestorePlan(source->image_, settings));
    EMBER_ASSIGN_OR_RETURN(UniqueFd fd, snapshot::PlanMemfd(plan));
    (cold ? source->cold_plan_ : source->warm_plan_) = std::move(fd);
  }
  return source;
}

bool SnapshotSource::Resident() const {
  CachestatRange range{0, 0};  // len 0: to the end of the file
  Cachestat stat{};
  if (::syscall(kSysCachestat, image_.fd(), &range, &stat, 0) != 0) return false;
  uint64_t pages = (size_bytes_ + 4095) / 4096;
  return pages > 0 && stat.nr_cache * 10 >= pages * 9;
}

Status SnapshotSource::Evict() const {
  if (int err = ::posix_fadvise(image_.fd(), 0, 0, POSIX_FADV_DONTNEED); err != 0) {
    return FailErrno("evict snapshot " + path_ + " from the page cache", err);
  }
  return Ok();
}

}  // namespace ember::engine
