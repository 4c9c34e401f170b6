// Test helper: writes tar archives with libarchive so tests can build exactly the entries they
// need (including hostile ones no tar tool would write). Entries are owned by the caller's ids
// unless told otherwise, so unpacking works without privileges.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <string>

namespace ember::image::testing {

class TarWriter {
 public:
  // filter: "" (none), "gzip" or "zstd".
  explicit TarWriter(const std::string& path, const std::string& filter = "") {
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    if (filter == "gzip") archive_write_add_filter_gzip(a_);
    if (filter == "zstd") archive_write_add_filter_zstd(a_);
    archive_write_open_filename(a_, path.c_str());
  }
  ~TarWriter() { Close(); }
  void Close() {
    if (a_ == nullptr) return;
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
  }

  void File(const std::string& path, const std::string& content, int mode = 0644, int64_t uid = -1,
            int64_t gid = -1) {
    Add(path, AE_IFREG, mode, content, "", "", uid, gid);
  }
  void Dir(const std::string& path, int mode = 0755) {
    Add(path, AE_IFDIR, mode, "", "", "", -1, -1);
  }
  void Symlink(const std::string& path, const std::string& target) {
    Add(path, AE_IFLNK, 0777, "", target, "", -1, -1);
  }
  void Hardlink(const std::string& path, const std::string& target) {
    Add(path, AE_IFREG, 0644, "", "", target, -1, -1);
  }
  void CharDevice(const std::string& path) { Add(path, AE_IFCHR, 0666, "", "", "", -1, -1); }

 private:
  void Add(const std::string& path, unsigned type, int mode, const std::string& content,
           const std::string& symlink, const std::string& hardlink, int64_t uid, int64_t gid) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, static_cast<mode_t>(mode));
    archive_entry_set_uid(e, uid < 0 ? ::geteuid() : uid);
    archive_entry_set_gid(e, gid < 0 ? ::getegid() : gid);
    archive_entry_set_mtime(e, 1600000000, 0);
    if (type == AE_IFCHR) archive_entry_set_rdev(e, 0x0103);
    if (!symlink.empty()) archive_entry_set_symlink(e, symlink.c_str());
    if (!hardlink.empty()) archive_entry_set_hardlink(e, hardlink.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(hardlink.empty() ? content.size() : 0));
    archive_write_header(a_, e);
    if (!content.empty()) archive_write_data(a_, content.data(), content.size());
    archive_entry_free(e);
  }
  struct archive* a_ = nullptr;
};

}  // namespace ember::image::testing
