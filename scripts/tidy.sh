#!/usr/bin/env bash
# Runs clang-tidy (checks in .clang-tidy, every finding an error) over ember's sources, in
# parallel. Used by `make tidy` and by the clang_tidy test.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is not installed" >&2; exit 1; }
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json (configure first)" >&2; exit 1; }
git ls-files 'src/*.cc' | grep -v '_test\.cc$' |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>/dev/null |
  grep -E "(warning|error):" && { echo "tidy: findings above" >&2; exit 1; }
echo "tidy: no findings"
