#!/usr/bin/env bash
# Runs clang-tidy (checks in .clang-tidy, every finding an error) over ember's sources, in
# parallel. Used by `make tidy` and by the clang_tidy test.
#
# The clang static analyzer (clang-analyzer-*) doubles the time of each file. It runs on the
# code where its path-sensitive checks matter most (parsers of untrusted bytes, raw syscalls,
# code between clone and exec, the restorer): base, sys, sandbox, image, snapshot, restorer,
# agent. The engine, daemon and CLI (Boost.Asio/Beast-heavy, the slowest to analyze) get every
# other check; `TIDY_FULL=1` analyzes them too.
#
# performance-unnecessary-value-param runs only with `TIDY_FULL=1`: clang-tidy 14 runs it on every
# function of every header a file includes (its findings there are then thrown away), which made
# it the costliest check by far, ~8 of the 18 s of a CLI file (CLI11, Boost); it is
# allocation-level advice (a copied parameter), the kind .clang-tidy already leaves out, not a bug.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is not installed" >&2; exit 1; }
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json (configure first)" >&2; exit 1; }
analyzed='^src/(base|sys|sandbox|image|snapshot|restorer|agent)/'
ci_only='-performance-unnecessary-value-param'
if [ "${TIDY_FULL:-0}" = 1 ]; then
  analyzed='^src/'
  ci_only=''
fi
files=$(git ls-files 'src/*.cc' | grep -v '_test\.cc$')
# One file: clang-tidy with CHECKS. A crash (clang 14's static analyzer has segfaulted on a file
# here) would make xargs stop and leave the remaining files unchecked, silently: the file is
# checked again without the analyzer, and the crash is reported on stderr.
tidy_one() {
  local build=$1 checks=$2 file=$3 status=0
  clang-tidy -p "$build" --quiet --checks="$checks" "$file" 2>/dev/null || status=$?
  if [ "$status" -ge 128 ]; then
    echo "tidy: clang-tidy crashed (status $status) on $file; checked again without the analyzer" >&2
    clang-tidy -p "$build" --quiet --checks="-clang-analyzer-*,$checks" "$file" 2>/dev/null || true
  fi
  return 0
}
export -f tidy_one
# One file per clang-tidy (-n 1): with several, the last batch kept one core busy for a minute
# while the other idled.
findings=$(
  {
    grep -E "$analyzed" <<<"$files" |
      xargs -r -P "$(nproc)" -n 1 bash -c 'tidy_one "$@"' _ "$build" "$ci_only"
    grep -vE "$analyzed" <<<"$files" |
      xargs -r -P "$(nproc)" -n 1 bash -c 'tidy_one "$@"' _ "$build" "-clang-analyzer-*,$ci_only"
  } | grep -E "(warning|error):" || true
)
if [ -n "$findings" ]; then
  echo "$findings"
  echo "tidy: findings above" >&2
  exit 1
fi
echo "tidy: no findings"
