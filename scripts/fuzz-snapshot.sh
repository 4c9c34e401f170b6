#!/usr/bin/env bash
# Fuzzes the snapshot image reader (fuzz/snapshot_reader_fuzz.cc) with clang's libFuzzer under
# ASan and UBSan for SECONDS (default 60), starting from seeds the real writer produces
# (fuzz/snapshot_seeds.cc). The binaries and the growing corpus live in WORK_DIR (default
# build-fuzz); they are rebuilt only when a source changed. Exit 77 (ctest: skipped) without
# clang++ or its libFuzzer runtime. A crash leaves its input in WORK_DIR as crash-*.
#   scripts/fuzz-snapshot.sh [SECONDS] [WORK_DIR]
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/.."
work=$(realpath -m "${2:-build-fuzz}")
cxx=${CLANGXX:-clang++}

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz-snapshot: skipped: clang++ is not installed (scripts/install-deps.sh installs clang)"
  exit 77
fi
mkdir -p "$work/corpus"
probe="$work/probe.cc"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  >"$probe"
if ! "$cxx" -fsanitize=fuzzer "$probe" -o "$work/probe" 2>"$work/probe.log"; then
  echo "fuzz-snapshot: skipped: $cxx cannot link libFuzzer (install libclang-rt-14-dev):"
  tail -3 "$work/probe.log"
  exit 77
fi

sources=(src/snapshot/image_reader.cc src/snapshot/image_header.cc src/snapshot/metadata_check.cc
         src/snapshot/image_layout.cc src/snapshot/image_writer.cc src/snapshot/state_checks.cc
         src/snapshot/compat.cc src/snapshot/inspect.cc
         src/base/error.cc src/base/fs.cc src/base/mapped_region.cc src/base/units.cc)
# The sources are compiled once, in parallel, with ASan, UBSan and libFuzzer's coverage
# instrumentation, and linked into both binaries (the seeder runs the real writer, so it is checked
# by the sanitizers too). fmt comes from Debian's shared libfmt: header-only fmt made each of these
# files several seconds slower to compile, and this build sat alone at the end of CI's unit tests.
flags=(-std=c++20 -g -O1 -Isrc -DEMBER_VERSION='"fuzz"' -w
       -fsanitize=address,undefined -fno-sanitize-recover=undefined)
fuzzer="$work/snapshot_reader_fuzz"
seeder="$work/snapshot_seeds"
stale() {  # $1 is missing or older than a source
  [ ! -e "$1" ] || [ -n "$(find src/snapshot src/base fuzz -newer "$1" -name '*.[ch]*' | head -1)" ]
}
if stale "$fuzzer" || stale "$seeder"; then
  echo "fuzz-snapshot: building $fuzzer and $seeder"
  mkdir -p "$work/obj"
  export CXX_FOR_FUZZ="$cxx" OBJ_DIR="$work/obj"
  printf '%s\n' "${sources[@]}" fuzz/snapshot_reader_fuzz.cc fuzz/snapshot_seeds.cc |
    xargs -P "$(nproc)" -I{} bash -c \
      'o="$OBJ_DIR/$(echo "$1" | tr / _).o"; "$CXX_FOR_FUZZ" "${@:2}" -fsanitize=fuzzer-no-link -c "$1" -o "$o"' \
      _ {} "${flags[@]}"
  objects=()
  for src in "${sources[@]}"; do objects+=("$work/obj/$(echo "$src" | tr / _).o"); done
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/obj/fuzz_snapshot_reader_fuzz.cc.o" "${objects[@]}" \
    -lxxhash -lfmt -o "$fuzzer.tmp"
  "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link "$work/obj/fuzz_snapshot_seeds.cc.o" "${objects[@]}" \
    -lxxhash -lfmt -o "$seeder.tmp"
  mv "$fuzzer.tmp" "$fuzzer"
  mv "$seeder.tmp" "$seeder"
fi
"$seeder" "$work/corpus"

echo "fuzz-snapshot: fuzzing the reader for ${seconds}s (corpus $work/corpus)"
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  corpus
