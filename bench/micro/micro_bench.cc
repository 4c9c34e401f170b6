// The micro costs inside ember, with Google Benchmark: what one frame of the agent protocol costs
// to encode and decode, compiling a seccomp policy (why ember caches the BPF), a cgroup pool
// claim and release (the hot path of every boot), and opening a snapshot image (header, section
// and pointer checks before a restore). The whole-system comparisons with peers are the Python
// benchmarks beside this directory.
//
//   build/bin/ember-micro-bench [--benchmark_format=json] [--benchmark_filter=REGEX]
//
// The cgroup benchmark needs root and cgroup controllers; it reports why it skips otherwise.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "agent/protocol.h"
#include "base/fs.h"
#include "sandbox/cgroup/hierarchy.h"
#include "sandbox/cgroup/pool.h"
#include "sandbox/seccomp.h"
#include "snapshot/image_reader.h"
#include "snapshot/image_writer.h"
#include "snapshot/test_state.h"

namespace ember {
namespace {

void BM_FrameEncode(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string out;
  for (auto _ : state) {
    out.clear();
    agent::EncodeFrame(agent::FrameType::kInvoke, 42, payload, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FrameEncode)->Arg(64)->Arg(4096)->Arg(1 << 20);

void BM_FrameDecode(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string wire;
  agent::EncodeFrame(agent::FrameType::kInvoke, 42, payload, &wire);
  for (auto _ : state) {
    agent::FrameReader reader;
    reader.Feed(wire.data(), wire.size());
    auto frame = reader.Next();
    if (!frame || !*frame) {
      state.SkipWithError("the frame did not decode");
      break;
    }
    benchmark::DoNotOptimize((*frame)->payload.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FrameDecode)->Arg(64)->Arg(4096)->Arg(1 << 20);

void BM_SeccompCompile(benchmark::State& state) {
  auto policy = static_cast<sandbox::SeccompPolicy>(state.range(0));
  for (auto _ : state) {
    auto program = sandbox::CompileSeccomp(policy);
    if (!program) {
      state.SkipWithError(program.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(program->instructions.data());
  }
}
BENCHMARK(BM_SeccompCompile)
    ->Arg(static_cast<int>(sandbox::SeccompPolicy::kStrict))
    ->Arg(static_cast<int>(sandbox::SeccompPolicy::kTemplate))
    ->Unit(benchmark::kMicrosecond);

// A private pool (its own name and lock dir), removed at the end.
void BM_CgroupClaimRelease(benchmark::State& state) {
  if (::geteuid() != 0) {
    state.SkipWithError("needs root (cgroup directories)");
    return;
  }
  auto hierarchy = cgroup::DetectHierarchy();
  if (!hierarchy) {
    state.SkipWithError(hierarchy.error().ToString().c_str());
    return;
  }
  char lock_dir[] = "/tmp/ember-micro-XXXXXX";
  if (::mkdtemp(lock_dir) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  cgroup::PoolOptions options;
  options.name = "ember-micro-" + std::to_string(::getpid());
  options.lock_dir = lock_dir;
  options.target_free = 4;
  auto pool = cgroup::Pool::Open(*hierarchy, options);
  if (!pool || !pool->Fill()) {
    state.SkipWithError(pool ? "cannot fill the pool" : pool.error().ToString().c_str());
    (void)RemoveTree(lock_dir);
    return;
  }
  for (auto _ : state) {
    auto lease = pool->Claim();
    if (!lease || !lease->Release()) {
      state.SkipWithError("claim or release failed");
      break;
    }
  }
  (void)pool->Destroy();
  (void)RemoveTree(lock_dir);
}
BENCHMARK(BM_CgroupClaimRelease)->Unit(benchmark::kMicrosecond);

// Open = read the header, check sections, limits and every pointer, relocate (no page data).
void BM_SnapshotOpen(benchmark::State& state) {
  char dir[] = "/tmp/ember-micro-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  std::string path = std::string(dir) + "/image";
  auto synthetic = snapshot::testing::SyntheticState(static_cast<int>(state.range(0)),
                                                     static_cast<int>(state.range(1)));
  if (auto written = snapshot::WriteImage(synthetic, path); !written) {
    state.SkipWithError(written.error().ToString().c_str());
    (void)RemoveTree(dir);
    return;
  }
  for (auto _ : state) {
    auto image = snapshot::ImageReader::Open(path);
    if (!image) {
      state.SkipWithError(image.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(image->threads().size());
  }
  (void)RemoveTree(dir);
}
BENCHMARK(BM_SnapshotOpen)->Args({1, 8})->Args({8, 64})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ember

BENCHMARK_MAIN();
