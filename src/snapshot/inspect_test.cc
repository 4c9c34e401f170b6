#include "snapshot/inspect.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "snapshot/image_writer.h"
#include "snapshot/test_state.h"

namespace ember::snapshot {
namespace {

ImageReader Open(const ProcessState& s) {
  auto bytes = EncodeImage(s);
  EXPECT_TRUE(bytes) << bytes.error().ToString();
  UniqueFd fd(::memfd_create("inspect-test", MFD_CLOEXEC));
  EXPECT_EQ(::write(fd.get(), bytes->data(), bytes->size()), static_cast<ssize_t>(bytes->size()));
  auto image = ImageReader::Open(std::move(fd), "fn.snap");
  EXPECT_TRUE(image) << image.error().ToString();
  return std::move(*image);
}

bool Has(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

TEST(SnapshotInspectTest, TextNamesEverySection) {
  ImageReader image = Open(testing::SyntheticState());
  InspectExtras extras;
  extras.host_compat = Fail(ErrorCode::kUnsupported,
                            "snapshot was taken on kernel a, this host "
                            "runs b");
  extras.pages_verified = true;
  const std::string text = RenderImageText(image, extras);
  EXPECT_TRUE(Has(text, "snapshot fn.snap: format 2")) << text;
  EXPECT_TRUE(Has(text, "section metadata")) << text;
  EXPECT_TRUE(Has(text, "compat: kernel 6.1.0-18-amd64")) << text;
  EXPECT_TRUE(Has(text, "\n  snapshot was taken on kernel a, this host runs b\n")) << text;
  EXPECT_TRUE(Has(text, "process: pid 1, umask 0027, cwd /srv/app, exe /usr/bin/python3.11"));
  EXPECT_TRUE(Has(text, "clocks at checkpoint: monotonic 54038.123457s, boottime 54100.987654s"))
      << text;
  EXPECT_TRUE(Has(text, "threads (3):"));
  EXPECT_TRUE(Has(text, "rip 0x0000000000401002")) << text;
  EXPECT_TRUE(Has(text, "rseq 0x7f0000004040 (len 32, sig 0x53053053) restarts its syscall"))
      << text;
  EXPECT_TRUE(Has(text, "areas (4, 11 stored pages"));
  EXPECT_TRUE(Has(text,
                  "000000400000-000000408000 r-xp file-private     3 stored pages in   2 "
                  "runs (12K) /usr/lib/libarea0.so"))
      << text;
  EXPECT_TRUE(Has(text, "fd 1    pipe            /srv/app/file1 flags 02002 offset 100")) << text;
  EXPECT_TRUE(Has(text, "SIGPIPE    SIG_IGN")) << text;
  EXPECT_TRUE(Has(text, "SIGTRAP    0x402005 flags 0x4000000 mask 0x5")) << text;
  EXPECT_TRUE(Has(text, "itimer real     value 0.002000s interval 0.001000s")) << text;
  EXPECT_TRUE(Has(text, "posix timer 1 clock 0 signal 10 notify thread-id")) << text;
  EXPECT_TRUE(Has(text, "working set: 3 pages (12K)")) << text;
  EXPECT_TRUE(Has(text, "page data: every checksum matches"));
}

TEST(SnapshotInspectTest, JsonCarriesTheSameFacts) {
  ProcessState s = testing::SyntheticState();
  s.areas[0].path = "/usr/lib/\xff\xfe-not-utf8.so";  // must not throw
  ImageReader image = Open(s);
  InspectExtras extras;
  extras.host_compat = Ok();
  auto doc = nlohmann::json::parse(RenderImageJson(image, extras));
  EXPECT_EQ(doc["format_version"], 2);
  EXPECT_EQ(doc["host_compatible"], true);
  EXPECT_EQ(doc["sections"].size(), 5u);
  EXPECT_EQ(doc["compat"]["glibc"], "2.36");
  EXPECT_EQ(doc["process"]["threads"].size(), 3u);
  EXPECT_EQ(doc["process"]["threads"][1]["rsp"], "0x7ffcff00");
  EXPECT_EQ(doc["process"]["areas"][1]["runs"].size(), 2u);
  EXPECT_EQ(doc["process"]["areas"][1]["stored_pages"], 5);
  EXPECT_EQ(doc["process"]["files"][1]["kind"], "pipe");
  EXPECT_EQ(doc["process"]["signals"].size(), 13u);
  EXPECT_EQ(doc["process"]["timers"].size(), 4u);
  EXPECT_EQ(doc["process"]["clocks"]["monotonic_ns"], 54038123456789u);
  EXPECT_EQ(doc["process"]["clocks"]["boottime_ns"], 54100987654321u);
  EXPECT_EQ(doc["working_set_pages"], 3);
  EXPECT_EQ(doc["stored_pages"], 11);
}

TEST(SnapshotInspectTest, ProtAndKindNames) {
  EXPECT_EQ(ProtString(PROT_READ | PROT_WRITE, MAP_SHARED), "rw-s");
  EXPECT_EQ(ProtString(0, MAP_PRIVATE), "---p");
  EXPECT_EQ(AreaKindName(AreaKind::kVvarVclock), "vvar-vclock");
  EXPECT_EQ(FileKindName(FileKind::kDevice), "device");
}

}  // namespace
}  // namespace ember::snapshot
