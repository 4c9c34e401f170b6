#include "snapshot/compat.h"

#include <gtest/gtest.h>

namespace ember::snapshot {
namespace {

CompatRecord Sample() {
  return {"6.18.0-x", 0xabcdef,   8192,  0x7ffafbff, 0xbfebfbff, 0x9c6fbf,
          0x4,        0xfc000400, 0x2e7, 2696,       "2.36",     "0.1.0"};
}

std::string Refusal(const CompatRecord& snapshot, const CompatRecord& host) {
  auto view = EncodeCompat(snapshot);
  EXPECT_TRUE(view) << view.error().ToString();
  auto checked = CheckCompat(*view, host);
  EXPECT_FALSE(checked);
  if (checked) return "";
  EXPECT_EQ(checked.error().code(), ErrorCode::kUnsupported);
  return checked.error().message();
}

TEST(SnapshotCompatTest, HostRecordDescribesThisMachine) {
  auto host = HostCompat("0123abcd");
  ASSERT_TRUE(host) << host.error().ToString();
  EXPECT_FALSE(host->kernel_release.empty());
  EXPECT_GT(host->vdso_size, 0u);
  EXPECT_EQ(host->vdso_size % 4096, 0u);
  EXPECT_NE(host->vdso_hash, 0u);
  EXPECT_EQ(host->ember_version, EMBER_VERSION);
  EXPECT_EQ(host->glibc_version, "0123abcd");
  if ((host->cpuid_1_ecx & (1u << 27)) != 0) {
    EXPECT_NE(host->xcr0 & 3, 0u);  // x87 and SSE state are always enabled
    EXPECT_GE(host->xsave_size, 576u);
  }
  // Stable: the same host hashes its vDSO to the same value each time.
  EXPECT_EQ(HostCompat("")->vdso_hash, host->vdso_hash);
  auto view = EncodeCompat(*host);
  ASSERT_TRUE(view);
  EXPECT_TRUE(CheckCompat(*view, *host));
}

TEST(SnapshotCompatTest, EncodeDecodeRoundTrip) {
  auto view = EncodeCompat(Sample());
  ASSERT_TRUE(view);
  CompatRecord back = DecodeCompat(*view);
  EXPECT_EQ(back.kernel_release, "6.18.0-x");
  EXPECT_EQ(back.glibc_version, "2.36");
  EXPECT_EQ(back.ember_version, "0.1.0");
  EXPECT_EQ(back.vdso_hash, 0xabcdefu);
  EXPECT_EQ(back.cpuid_7_edx, 0xfc000400u);
  EXPECT_EQ(back.xcr0, 0x2e7u);
  // The checkpointer stores the image libc's GNU build-id (40 hex digits) as its version.
  CompatRecord with_build_id = Sample();
  with_build_id.glibc_version = std::string(40, 'f');
  EXPECT_TRUE(EncodeCompat(with_build_id));
  CompatRecord long_release = Sample();
  long_release.kernel_release = std::string(100, 'k');
  auto refused = EncodeCompat(long_release);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("kernel release"), std::string::npos);
}

TEST(SnapshotCompatTest, MismatchNamesTheFieldAndBothValues) {
  CompatRecord host = Sample();
  host.kernel_release = "6.18.0-y";
  EXPECT_NE(Refusal(Sample(), host)
                .find("snapshot was taken on kernel 6.18.0-x, this host runs "
                      "6.18.0-y"),
            std::string::npos);

  host = Sample();
  host.vdso_hash = 0x1234;
  EXPECT_NE(Refusal(Sample(), host)
                .find("xxh64 0xabcdef), this host's vDSO is 8192 bytes (xxh64 "
                      "0x1234)"),
            std::string::npos);

  host = Sample();
  host.cpuid_7_ebx &= ~0x20u;  // AVX2 missing on the host
  std::string message = Refusal(Sample(), host);
  EXPECT_NE(message.find("cpuid 7 ebx 0x9c6fbf, this host has 0x9c6f9f (missing feature bits "
                         "0x20)"),
            std::string::npos)
      << message;

  host = Sample();
  host.xcr0 = 0x207;
  EXPECT_NE(Refusal(Sample(), host).find("xcr0 0x2e7, this host has xcr0 0x207"),
            std::string::npos);
  host = Sample();
  host.xsave_size = 832;
  EXPECT_NE(Refusal(Sample(), host).find("2696 bytes, this host's is 832 bytes"),
            std::string::npos);
  host = Sample();
  host.glibc_version = "2.37";
  EXPECT_NE(Refusal(Sample(), host).find("glibc 2.36, this host has glibc 2.37"),
            std::string::npos);
  host = Sample();
  host.ember_version = "0.2.0";
  EXPECT_NE(Refusal(Sample(), host).find("taken by ember 0.1.0, this is ember 0.2.0"),
            std::string::npos);
}

TEST(SnapshotCompatTest, ExtraHostCpuFeaturesAreFine) {
  CompatRecord host = Sample();
  host.cpuid_7_ecx |= 0x100;
  host.cpuid_1_ecx |= 0x80000000u;
  auto view = EncodeCompat(Sample());
  ASSERT_TRUE(view);
  EXPECT_TRUE(CheckCompat(*view, host));
}

}  // namespace
}  // namespace ember::snapshot
