#!/usr/bin/env bash
# Runs the whole test suite. Unit tests run in parallel; privileged and e2e tests share the host's
# cgroups and mounts, so they run one at a time.
set -uo pipefail
build=${1:-build}
rc=0
ctest --test-dir "$build" -L unit --output-on-failure -j "$(nproc)" || rc=1
ctest --test-dir "$build" -L 'privileged|e2e' --output-on-failure || rc=1
exit $rc
