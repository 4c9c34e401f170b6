#include "snapshot/working_set.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "snapshot/proc_parsers.h"

namespace ember::snapshot {
namespace {

constexpr uint64_t kPresent = 1ULL << 63;
constexpr uint64_t kSwapped = 1ULL << 62;

}  // namespace

Result<std::vector<uint64_t>> RecordWorkingSet(pid_t pid, const std::string& image_path,
                                               const std::string& proc_root) {
  struct stat image {};
  if (::stat(image_path.c_str(), &image) != 0) return FailErrno("stat snapshot " + image_path);
  const std::string proc = proc_root + "/" + std::to_string(pid);
  EMBER_ASSIGN_OR_RETURN(std::string maps_text, ReadFile(proc + "/maps"));
  EMBER_ASSIGN_OR_RETURN(auto maps, proc::ParseMaps(maps_text));
  EMBER_ASSIGN_OR_RETURN(UniqueFd pagemap, OpenFile(proc + "/pagemap", O_RDONLY | O_CLOEXEC, 0));

  std::vector<uint64_t> pages;
  std::vector<uint64_t> entries;
  for (const proc::MapsEntry& area : maps) {
    if (area.inode != image.st_ino || area.dev_major != major(image.st_dev) ||
        area.dev_minor != minor(image.st_dev)) {
      continue;
    }
    size_t count = (area.end - area.start) / 4096;
    entries.resize(count);
    ssize_t n = ::pread(pagemap.get(), entries.data(), count * sizeof(uint64_t),
                        static_cast<off_t>(area.start / 4096 * sizeof(uint64_t)));
    if (n < 0) return FailErrno("read " + proc + "/pagemap");
    for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(uint64_t); ++i) {
      if (entries[i] & (kPresent | kSwapped)) pages.push_back(area.start + i * 4096);
    }
  }
  return pages;
}

}  // namespace ember::snapshot
