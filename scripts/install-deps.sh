#!/usr/bin/env bash
# Installs every Debian package ember needs to build, test and run its demo. Idempotent and quiet:
# it does nothing when everything is present, and names the package when one cannot be had.
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build make pkg-config libc6-dev
  # libraries
  libseccomp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libexpected-dev
  libarchive-dev libxxhash-dev libzstd-dev zlib1g-dev libbz2-dev liblzma-dev
  # the daemon (HTTP on Asio/Beast), function manifests (TOML), the agent's Python runtime
  libboost-dev libtomlplusplus-dev libpython3.11-dev
  # tests
  libgtest-dev libgmock-dev busybox-static python3 clang-format clang-tidy clang libclang-rt-14-dev
  # benchmarks: the micro benchmarks (bench/micro), the suite's plots (tested by bench/tests)
  libbenchmark-dev python3-matplotlib
  # images: EROFS files, Debian rootfs builds
  erofs-utils mmdebstrap util-linux ca-certificates
)
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  # Output captured, not piped into grep -q: under pipefail, grep quitting early fails the pipe.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != *"install ok installed"* ]]; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (apt-get install needs it)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/tmp/ember-apt-update.log 2>&1; then
  echo "install-deps: apt-get update failed (see /tmp/ember-apt-update.log):" >&2
  tail -5 /tmp/ember-apt-update.log >&2
  exit 1
fi
for p in "${missing[@]}"; do
  policy=$(apt-cache policy "$p" 2>/dev/null || true)
  if ! grep -q 'Candidate: [^(]' <<<"$policy"; then
    echo "install-deps: package '$p' is not available from the configured apt sources" >&2
    exit 1
  fi
done
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/ember-apt-install.log 2>&1; then
  echo "install-deps: apt-get install failed (see /tmp/ember-apt-install.log):" >&2
  tail -10 /tmp/ember-apt-install.log >&2
  exit 1
fi
