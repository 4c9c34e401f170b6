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
#
# Which files: clang-tidy needs ~6 s of CPU per file here (the headers of Boost, nlohmann-json and
# CLI11 are parsed and matched for every file), ~20 min for all of them on 2 cores, more than the
# rest of CI. scripts/tidy-clean.txt records the fingerprint of each file found clean
# (scripts/tidy_fingerprint.py: the file, the ember headers it includes, .clang-tidy, the checks
# chosen below and the clang-tidy version); by default only files whose fingerprint is not
# recorded there are checked, i.e. the ones that changed since. `--update` does the same and adds
# the files found clean to the record (`make tidy`; commit the result); `--all` checks every file;
# `--record` checks every file and rewrites the record from scratch (`make tidy-all`).
#   scripts/tidy.sh [BUILD_DIR] [--update|--all|--record]
set -euo pipefail
build=${1:-build}
mode=${2:-changed}
cd "$(dirname "$0")/.."
case "$mode" in changed | --update | --all | --record) ;; *) echo "tidy: unknown mode $mode" >&2; exit 2 ;; esac
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is not installed" >&2; exit 1; }
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json (configure first)" >&2; exit 1; }
analyzed='^src/(base|sys|sandbox|image|snapshot|restorer|agent)/'
ci_only='-performance-unnecessary-value-param'
if [ "${TIDY_FULL:-0}" = 1 ]; then
  analyzed='^src/'
  ci_only=''
fi
record=scripts/tidy-clean.txt
if [ "$mode" = --record ] || [ "$mode" = --update ] && [ "${TIDY_FULL:-0}" = 1 ]; then
  echo "tidy: $mode records the checks CI runs; run it without TIDY_FULL=1" >&2
  exit 2
fi
# What a verdict depends on besides the files: the checks and the tool (not this script's
# mechanics, so that editing them keeps the record). Only the version line of the tool: the rest
# of `clang-tidy --version` names the host's CPU, which differs between machines.
tool_version=$(clang-tidy --version)
seed="$(cat .clang-tidy; grep -m1 -i 'version' <<<"$tool_version"; echo "$analyzed $ci_only")"
all_files=$(git ls-files 'src/*.cc' | grep -v '_test\.cc$')
fingerprints=$(/usr/bin/python3 scripts/tidy_fingerprint.py "$build" "$seed" $all_files)
if { [ "$mode" = changed ] || [ "$mode" = --update ]; } && [ -f "$record" ]; then
  files=$(grep -vxFf "$record" <<<"$fingerprints" | cut -d' ' -f2- || true)
  echo "tidy: $(($(wc -l <<<"$all_files") - $(grep -c . <<<"$files" || true))) files unchanged" \
    "since their recorded clean run ($record); checking the $(grep -c . <<<"$files" || true) others"
else
  files=$all_files
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# One file: clang-tidy with CHECKS, its output in $out. A crash (clang 14's static analyzer has
# segfaulted on a file here) would make xargs stop and leave the remaining files unchecked,
# silently: the file is checked again without the analyzer, and the crash is reported on stderr.
tidy_one() {
  local build=$1 checks=$2 out=$3 file=$4 status=0
  local log="$out/$(tr / _ <<<"$file")"
  clang-tidy -p "$build" --quiet --checks="$checks" "$file" >"$log" 2>/dev/null || status=$?
  if [ "$status" -ge 128 ]; then
    echo "tidy: clang-tidy crashed (status $status) on $file; checked again without the analyzer" >&2
    clang-tidy -p "$build" --quiet --checks="-clang-analyzer-*,$checks" "$file" >"$log" 2>/dev/null || true
  fi
  return 0
}
export -f tidy_one
# One file per clang-tidy (-n 1): with several, the last batch kept one core busy for a minute
# while the other idled.
{
  grep -E "$analyzed" <<<"$files" |
    xargs -r -P "$(nproc)" -n 1 bash -c 'tidy_one "$@"' _ "$build" "$ci_only" "$out"
  grep -vE "$analyzed" <<<"$files" |
    xargs -r -P "$(nproc)" -n 1 bash -c 'tidy_one "$@"' _ "$build" "-clang-analyzer-*,$ci_only" "$out"
} || true
findings=$(cat "$out"/* 2>/dev/null | grep -E "(warning|error):" || true)
if [ "$mode" = --record ] || [ "$mode" = --update ]; then
  # Recorded: files with no finding in their own output and known dependencies, and (--update)
  # the files whose recorded fingerprint still holds.
  [ "$mode" = --update ] && [ -f "$record" ] && kept=$(cat "$record") || kept=
  while read -r fingerprint file; do
    [ "$fingerprint" != - ] || continue
    if grep -qxF "$fingerprint $file" <<<"$kept"; then
      echo "$fingerprint $file"
    elif [ -f "$out/$(tr / _ <<<"$file")" ] &&
      ! grep -qE "(warning|error):" "$out/$(tr / _ <<<"$file")"; then
      echo "$fingerprint $file"
    fi
  done <<<"$fingerprints" >"$record.tmp"
  sync "$record.tmp"
  mv "$record.tmp" "$record"
  echo "tidy: recorded $(wc -l <"$record") clean files in $record"
fi
if [ -n "$findings" ]; then
  echo "$findings"
  echo "tidy: findings above" >&2
  exit 1
fi
echo "tidy: no findings"
