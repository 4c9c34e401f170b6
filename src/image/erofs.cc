#include "image/erofs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>
#include <cstring>

#include "base/child_process.h"
#include "base/fs.h"

namespace ember::image {
namespace {

// Any fixed value works; a random UUID (mkfs's default) would make every build differ.
constexpr const char* kFixedUuid = "e3be0000-0000-4000-8000-000000000000";

// Field offsets inside the on-disk superblock (struct erofs_super_block).
constexpr size_t kSbMagic = 0, kSbChecksum = 4, kSbFeatureCompat = 8, kSbBlkSzBits = 12;
constexpr size_t kSbBuildTime = 24, kSbBuildTimeNsec = 32;
constexpr uint32_t kFeatureCompatSbChecksum = 0x1;

uint32_t Le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
}
void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

Status PReadAll(int fd, void* buf, size_t size, off_t offset, const std::string& path) {
  ssize_t n = ::pread(fd, buf, size, offset);
  if (n < 0) return FailErrno("read " + path);
  if (static_cast<size_t>(n) != size) {
    return Fail(ErrorCode::kCorrupt, path + " is too short to be an EROFS image");
  }
  return Ok();
}

}  // namespace

uint32_t ErofsCrc32c(uint32_t crc, const void* data, size_t size) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

Status PackErofs(const std::string& source_dir, const std::string& out,
                 const std::vector<std::string>& exclude) {
  std::vector<std::string> argv = {"mkfs.erofs", "--quiet", std::string("-U") + kFixedUuid,
                                   "--preserve-mtime"};
  for (const auto& path : exclude) argv.push_back("--exclude-path=" + path);
  argv.push_back(out);
  argv.push_back(source_dir);
  auto ran = RunTool(argv);
  if (!ran) {
    return Fail(std::move(ran).error().Context("pack " + source_dir + " into EROFS (erofs-utils)"));
  }
  return NormalizeErofsSuperblock(out);
}

Status NormalizeErofsSuperblock(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDWR));
  uint8_t head[16];
  EMBER_TRY(PReadAll(fd.get(), head, sizeof head, kErofsSuperOffset, path));
  if (Le32(head + kSbMagic) != kErofsMagic) {
    return Fail(ErrorCode::kCorrupt, path + " is not an EROFS image (bad magic)");
  }
  unsigned blkszbits = head[kSbBlkSzBits];
  if (blkszbits < 9 || blkszbits > 16)
    return Fail(ErrorCode::kCorrupt, path + ": bad EROFS block size");
  // The checksum covers the rest of the first block, starting at the superblock.
  std::vector<uint8_t> sb((size_t{1} << blkszbits) - kErofsSuperOffset);
  EMBER_TRY(PReadAll(fd.get(), sb.data(), sb.size(), kErofsSuperOffset, path));
  std::memset(sb.data() + kSbBuildTime, 0, 8);
  std::memset(sb.data() + kSbBuildTimeNsec, 0, 4);
  if (Le32(sb.data() + kSbFeatureCompat) & kFeatureCompatSbChecksum) {
    PutLe32(sb.data() + kSbChecksum, 0);
    PutLe32(sb.data() + kSbChecksum, ErofsCrc32c(~0u, sb.data(), sb.size()));
  }
  if (::pwrite(fd.get(), sb.data(), sb.size(), kErofsSuperOffset) !=
      static_cast<ssize_t>(sb.size())) {
    return FailErrno("write superblock of " + path);
  }
  return Ok();
}

Result<std::string> HashFile(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto fd, OpenFile(path, O_RDONLY));
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) return Fail(ErrorCode::kResourceExhausted, "XXH3_createState failed");
  XXH3_128bits_reset(state);
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      XXH3_freeState(state);
      return FailErrno("read " + path);
    }
    if (n == 0) break;
    XXH3_128bits_update(state, buf.data(), static_cast<size_t>(n));
  }
  XXH128_hash_t hash = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : canonical.digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

}  // namespace ember::image
