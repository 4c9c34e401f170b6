#include "snapshot/memory_capture.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/fs.h"
#include "snapshot/root_path.h"

namespace ember::snapshot {
namespace {

constexpr uint64_t kPagemapPresent = 1ULL << 63;
constexpr uint64_t kPagemapSwapped = 1ULL << 62;
constexpr uint64_t kPagemapFileOrShared = 1ULL << 61;
// Pagemap entries read per pread (512 KiB of entries, 256 MiB of address space).
constexpr uint64_t kPagemapChunk = 65536;

std::string AreaName(uint64_t start, uint64_t end, const std::string& path) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "area %llx-%llx", static_cast<unsigned long long>(start),
                static_cast<unsigned long long>(end));
  return path.empty() ? std::string(buf) : std::string(buf) + " (" + path + ")";
}

bool AllZero(const uint8_t* page) {
  for (uint64_t i = 0; i < kPageSize; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, page + i, 8);
    if (word != 0) return false;
  }
  return true;
}

bool StoresContents(const MemoryArea& area) {
  if (area.dontdump) return false;
  return area.kind == AreaKind::kAnonymous || area.kind == AreaKind::kStack ||
         area.kind == AreaKind::kFilePrivate;
}

}  // namespace

Result<std::vector<MemoryArea>> PlanAreas(const std::vector<proc::MapsEntry>& maps,
                                          const std::map<uint64_t, proc::VmFlags>& flags) {
  std::vector<MemoryArea> areas;
  for (const proc::MapsEntry& e : maps) {
    if (e.path == "[vsyscall]") continue;
    std::string name = AreaName(e.start, e.end, e.path);
    proc::VmFlags vm;
    if (auto it = flags.find(e.start); it != flags.end()) vm = it->second;
    MemoryArea area;
    area.start = e.start;
    area.end = e.end;
    area.prot = e.prot;
    area.flags = (e.shared ? MAP_SHARED : MAP_PRIVATE) | (vm.growsdown ? MAP_GROWSDOWN : 0);
    area.dontdump = vm.dontdump;
    area.file_offset = e.offset;
    const std::string& p = e.path;
    if (p == "[vdso]" || p == "[vvar]" || p == "[vvar_vclock]") {
      area.kind = p == "[vdso]"   ? AreaKind::kVdso
                  : p == "[vvar]" ? AreaKind::kVvar
                                  : AreaKind::kVvarVclock;
      area.path = p;
      area.file_offset = 0;
      areas.push_back(std::move(area));
      continue;
    }
    if (vm.io || vm.pfnmap) {
      return Fail(ErrorCode::kUnsupported,
                  name + " is device memory (VM_IO/VM_PFNMAP); ember cannot checkpoint it");
    }
    bool anonymous = p.empty() || p == "[heap]" || p == "[stack]" || p.starts_with("[anon:");
    if (e.shared &&
        (anonymous || e.inode == 0 || p.starts_with("/dev/zero") || p.starts_with("/SYSV") ||
         p.starts_with("/memfd:") || p.starts_with("[anon_shmem:"))) {
      return Fail(ErrorCode::kUnsupported,
                  name +
                      " is shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, memfd or SysV "
                      "shm); ember cannot checkpoint memory that may be shared with another "
                      "process");
    }
    if (anonymous) {
      area.kind = p == "[stack]" ? AreaKind::kStack : AreaKind::kAnonymous;
      area.file_offset = 0;
      if (p.starts_with("[anon:")) area.path = p;  // the name prctl(PR_SET_VMA) gave it
      areas.push_back(std::move(area));
      continue;
    }
    if (p.starts_with("[")) {
      return Fail(ErrorCode::kUnsupported, name + " is a kernel area ember does not know");
    }
    if (p.starts_with("/memfd:")) {
      return Fail(ErrorCode::kUnsupported,
                  name + " maps a memfd; ember cannot checkpoint a file that has no path");
    }
    area.kind = e.shared ? AreaKind::kFileShared : AreaKind::kFilePrivate;
    area.path = p;
    areas.push_back(std::move(area));
  }
  return areas;
}

Status ResolveAreaFiles(const SandboxRoot& root, const std::vector<proc::MapsEntry>& maps,
                        std::vector<MemoryArea>& areas) {
  for (MemoryArea& area : areas) {
    if (area.kind != AreaKind::kFilePrivate && area.kind != AreaKind::kFileShared) continue;
    auto entry = std::find_if(maps.begin(), maps.end(),
                              [&](const proc::MapsEntry& e) { return e.start == area.start; });
    if (entry == maps.end()) return Fail(ErrorCode::kInternal, "area lost between parses");
    // Since 6.8 maps shows the user-visible file (the overlayfs one, not its backing file), so
    // its device and inode are what a stat of the path inside the sandbox returns.
    struct stat held {};
    held.st_dev = makedev(entry->dev_major, entry->dev_minor);
    held.st_ino = entry->inode;
    EMBER_ASSIGN_OR_RETURN(
        auto file, ResolveInRoot(root, area.path, held, AreaName(area.start, area.end, "")));
    area.path = file.path;
    area.dev = file.dev;
    area.inode = file.inode;
  }
  return Ok();
}

void FillSmallGaps(MemoryArea& area) {
  if (area.kind != AreaKind::kAnonymous || area.pages.empty()) return;
  const auto area_pages = static_cast<uint32_t>((area.end - area.start) / kPageSize);
  std::vector<uint32_t> pages;
  std::vector<uint8_t> data;
  pages.reserve(area.pages.size());
  data.reserve(area.page_data.size());
  auto add_zeros = [&](uint32_t from, uint32_t to) {
    for (uint32_t page = from; page < to; ++page) pages.push_back(page);
    data.insert(data.end(), uint64_t{to - from} * kPageSize, 0);
  };
  uint32_t next = 0;  // the page after the last one kept
  for (size_t i = 0; i < area.pages.size(); ++i) {
    const uint32_t page = area.pages[i];
    if (page > next && page - next <= kMaxFilledGapPages) add_zeros(next, page);
    pages.push_back(page);
    const uint8_t* bytes = area.page_data.data() + i * kPageSize;
    data.insert(data.end(), bytes, bytes + kPageSize);
    next = page + 1;
  }
  if (next < area_pages && area_pages - next <= kMaxFilledGapPages) add_zeros(next, area_pages);
  area.pages = std::move(pages);
  area.page_data = std::move(data);
}

Result<std::vector<uint8_t>> ReadMemory(int mem_fd, uint64_t start, uint64_t end) {
  std::vector<uint8_t> out(end - start);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(mem_fd, out.data() + done, out.size() - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return FailErrno("read memory at " + AreaName(start + done, end, ""), n < 0 ? errno : EIO);
    }
    done += static_cast<size_t>(n);
  }
  return out;
}

Status CaptureContents(pid_t pid, int mem_fd, std::vector<MemoryArea>& areas) {
  std::string pagemap_path = "/proc/" + std::to_string(pid) + "/pagemap";
  EMBER_ASSIGN_OR_RETURN(auto pagemap, OpenFile(pagemap_path, O_RDONLY));
  std::vector<uint64_t> entries;
  for (MemoryArea& area : areas) {
    if (!StoresContents(area)) continue;
    bool file_backed = area.kind == AreaKind::kFilePrivate;
    uint64_t pages = (area.end - area.start) / kPageSize;
    for (uint64_t first = 0; first < pages; first += kPagemapChunk) {
      uint64_t count = std::min(kPagemapChunk, pages - first);
      entries.resize(count);
      off_t at = static_cast<off_t>((area.start / kPageSize + first) * sizeof(uint64_t));
      ssize_t n = ::pread(pagemap.get(), entries.data(), count * sizeof(uint64_t), at);
      if (n != static_cast<ssize_t>(count * sizeof(uint64_t))) {
        return FailErrno(
            "read " + pagemap_path + " for " + AreaName(area.start, area.end, area.path),
            n < 0 ? errno : EIO);
      }
      // Runs of wanted pages are read with one pread each.
      uint64_t i = 0;
      while (i < count) {
        auto wanted = [&](uint64_t e) {
          if (e & kPagemapSwapped) return true;
          if (!(e & kPagemapPresent)) return false;
          return !file_backed || !(e & kPagemapFileOrShared);
        };
        if (!wanted(entries[i])) {
          ++i;
          continue;
        }
        uint64_t run_end = i + 1;
        while (run_end < count && wanted(entries[run_end])) ++run_end;
        uint64_t run_start_addr = area.start + (first + i) * kPageSize;
        EMBER_ASSIGN_OR_RETURN(auto bytes, ReadMemory(mem_fd, run_start_addr,
                                                      run_start_addr + (run_end - i) * kPageSize));
        for (uint64_t k = 0; k < run_end - i; ++k) {
          const uint8_t* page = bytes.data() + k * kPageSize;
          // A zero anonymous page is what a fresh mapping shows; a zero copied-on-write page
          // of a file is not what the file shows.
          if (!file_backed && AllZero(page)) continue;
          area.pages.push_back(static_cast<uint32_t>(first + i + k));
          area.page_data.insert(area.page_data.end(), page, page + kPageSize);
        }
        i = run_end;
      }
    }
    FillSmallGaps(area);
  }
  return Ok();
}

}  // namespace ember::snapshot
