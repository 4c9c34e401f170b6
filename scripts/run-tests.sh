#!/usr/bin/env bash
# Runs the whole test suite. Unit tests run in parallel; privileged and e2e tests share the host's
# cgroups and mounts, so they run one at a time.
set -uo pipefail
build=${1:-build}
rc=0
# clang-tidy is the longest test by far (~10 min on 2 cores) and needs nothing but the compile
# database, so it runs beside the others (the privileged and e2e tests mostly wait on sandboxes)
# instead of after them; its output is shown when it is done.
tidy_log=$(mktemp)
ctest --test-dir "$build" -R '^clang_tidy$' --output-on-failure >"$tidy_log" 2>&1 &
tidy_pid=$!
ctest --test-dir "$build" -L unit -E '^clang_tidy$' --output-on-failure -j "$(nproc)" || rc=1
ctest --test-dir "$build" -L 'privileged|e2e' --output-on-failure || rc=1
wait "$tidy_pid" || rc=1
cat "$tidy_log"
rm -f "$tidy_log"
exit $rc
