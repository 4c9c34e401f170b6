#!/usr/bin/env bash
# `make bench` / `make bench-quick`: ember run against crun, runc, gVisor runsc and an
# unshare+chroot baseline, on the same python3.11 image, in the same run.
#
#   bench/run.sh EMBER_BIN [--quick] [--write-docs] [--rootfs-image FILE] [--only BENCH] [-- SCRIPT_ARGS...]
#
# --only run-vs-peers|invoke-latency|fork-boot|restore|engine|micro runs one of the benchmarks; SCRIPT_ARGS
# go to that one (without --only, to run_vs_peers.py).
#
# 1. installs the peers from Debian when missing (crun, runc, runsc, criu, python3,
#    python3-matplotlib for the plots);
# 2. makes sure ember's python3.11 image exists (`ember image build python3.11` once);
# 3. mounts that image's EROFS file read-only, so every peer runs on the very same bytes;
# 4. runs bench/run_vs_peers.py, which prints a markdown table and writes
#    bench/results/run-vs-peers-<timestamp>.json;
# 5. runs bench/invoke_latency.py: invocations through a private `ember daemon` (warm and
#    plain-boot) against the same peers' cold starts; bench/results/invoke-latency-<timestamp>.json;
# 6. runs bench/fork_boot.py: fork-boot latency against a raw fork floor and the peers, density
#    and a burst of fork boots; bench/results/fork-boot-<timestamp>.json;
# 6b. runs bench/restore_boot.py: cold and warm boot (restore → answer) against fork and plain
#    boot, runsc restore, runc + CRIU and bare CRIU; PSS of idle restored instances;
#    bench/results/restore-<timestamp>.json;
# 6c. runs bench/engine_latency.py: the same boot modes through the engine directly
#    (ember-engine-bench, built beside EMBER_BIN: no HTTP, no client) against the daemon path;
#    bench/results/engine-latency-<timestamp>.json;
# 7. runs ember-micro-bench (bench/micro, Google Benchmark), built beside EMBER_BIN: the costs
#    inside ember; bench/results/micro-<timestamp>.json.
# 8. draws the plots (bench/plots.py -> bench/results/plots/, docs/img with --write-docs) and
#    writes the combined record
#    (bench/report.py -> bench/results/suite-<timestamp>.json; with --write-docs, the Summary
#    section of docs/benchmarks.md), from the newest result of each benchmark; failing soft.
# Everything made here (mount, bundles, containers, cgroups, temp dirs) is removed at exit,
# also on failure or Ctrl-C. Needs root.
#
# If ember cannot provide the image (no `image` command yet), the script says so and builds the
# same recipe itself (mmdebstrap minbase + python3.11, packed with mkfs.erofs), so the peers can
# still be measured; ember is then reported with its error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '5p' "$0" | sed 's/^# *//' >&2; exit 2; }
[[ $# -ge 1 ]] || usage
ember=$1; shift
quick=() write_docs=() image_file="" extra=() only=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=(--quick) ;;
    --write-docs) write_docs=(--write-docs) ;;
    --rootfs-image) image_file=$2; shift ;;
    --only) only=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
[[ $ember == */* ]] && ember=$(realpath -m "$ember")
case $only in
  ""|run-vs-peers|invoke-latency|fork-boot|restore|engine|micro) ;;
  *) echo "bench/run.sh: --only takes run-vs-peers, invoke-latency, fork-boot, restore, engine or" \
          "micro, not '$only'" >&2
     exit 2 ;;
esac

if [[ $(id -u) -ne 0 ]]; then
  echo "bench/run.sh: needs root (namespaces, mounts, cgroups, containers)" >&2
  exit 2
fi

log() { printf 'bench: %s\n' "$*" >&2; }

# ---- peers ---------------------------------------------------------------------------------
missing=()
for tool in crun runc runsc python3 unshare mkfs.erofs; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# criu is installed as a peer but nothing depends on it working (Debian's fails on some kernels).
command -v criu >/dev/null 2>&1 || missing+=(criu)
# runc checkpoint/restore: CRIU locks the container's network namespace with iptables-restore.
command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables-restore)
# The plots need Debian's matplotlib (the python run.sh picks below is /usr/bin/python3).
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || missing+=(python3-matplotlib)
if [[ ${#missing[@]} -gt 0 ]]; then
  pkgs=()
  for tool in "${missing[@]}"; do
    case $tool in
      mkfs.erofs) pkgs+=(erofs-utils) ;;
      unshare) pkgs+=(util-linux) ;;
      iptables-restore) pkgs+=(iptables) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  log "installing ${pkgs[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null; then
    # One missing peer must not stop the others: the script reports what cannot run.
    log "apt-get install ${pkgs[*]} failed; the missing peers will be reported as failed"
  fi
fi
python=$(command -v python3)
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3  # Debian's, not a pyenv shim

# ---- scratch space and cleanup -------------------------------------------------------------
work=$(mktemp -d /tmp/ember-bench.XXXXXX)
rootfs=$work/rootfs
cgroup_parent=/ember-bench/sh-$$
mkdir -p "$rootfs"
script_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $script_pid ]] && kill -0 "$script_pid" 2>/dev/null; then
    kill -TERM "$script_pid" 2>/dev/null || true
    wait "$script_pid" 2>/dev/null || true
  fi
  # Containers the script could not delete (it was killed mid-run): delete them by state dir.
  local rt state id
  for rt in runc runsc crun; do
    state=$work/$rt/state
    [[ -d $state ]] || continue
    for id in $(ls -A "$state" 2>/dev/null | grep -o "^$rt-[0-9a-f]*-[0-9]*" | sort -u); do
      case $rt in
        crun) unshare -m --propagation private sh -c \
                "umount /sys/fs/cgroup/unified 2>/dev/null; crun --root '$state' delete -f '$id'" \
                >/dev/null 2>&1 || true ;;
        runsc) runsc --root "$state" delete -force "$id" >/dev/null 2>&1 || true ;;
        *) "$rt" --root "$state" delete -f "$id" >/dev/null 2>&1 || true ;;
      esac
    done
  done
  # restore_boot.py's checkpointed and restored containers (one state dir per peer and handler).
  for state in "$work"/restore-runsc-*/state "$work"/restore-runc-*/state; do
    [[ -d $state ]] || continue
    rt=runc
    [[ $state == */restore-runsc-* ]] && rt=runsc
    for id in $("$rt" --root "$state" list --quiet 2>/dev/null); do
      "$rt" --root "$state" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  if mountpoint -q "$rootfs"; then
    umount "$rootfs" 2>/dev/null || umount -l "$rootfs" 2>/dev/null || log "could not unmount $rootfs"
  fi
  local d
  for d in /sys/fs/cgroup/*/"${cgroup_parent#/}" /sys/fs/cgroup/"${cgroup_parent#/}"; do
    [[ -d $d ]] || continue
    find "$d" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null || true
    rmdir "$d" 2>/dev/null || true
    rmdir "$(dirname "$d")" 2>/dev/null || true  # /ember-bench when no other run uses it
  done
  rm -rf "$work"
  # ember keeps idle images mounted (EMBER_IMAGE_LINGER) and a cgroup pool; a benchmark leaves none.
  "$ember" cleanup >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the image -----------------------------------------------------------------------------
ember_image_error=""
if [[ -z $image_file ]]; then
  if ! "$ember" image inspect python3.11 >/dev/null 2>&1; then
    log "building ember's python3.11 image (once): $ember image build python3.11"
    if ! out=$("$ember" image build python3.11 2>&1); then
      ember_image_error=$(printf '%s' "$out" | tail -3)
    fi
  fi
  if [[ -z $ember_image_error ]]; then
    if inspect=$("$ember" image inspect python3.11 2>"$work/inspect.err"); then
      image_file=$(printf '%s' "$inspect" | "$python" -c \
        'import json, sys; r = json.load(sys.stdin); print(r.get("blob") or r["blob_path"])' 2>/dev/null) || true
      [[ -n $image_file ]] || ember_image_error="cannot read blob_path from: $(printf '%s' "$inspect" | head -c 300)"
    else
      ember_image_error=$(tail -3 "$work/inspect.err")
    fi
  fi
fi
if [[ -z $image_file ]]; then
  log "ember has no python3.11 image ($ember_image_error)"
  log "building the same recipe for the peers: mmdebstrap --variant=minbase --include=python3.11 bookworm"
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  mmdebstrap --quiet --variant=minbase --include=python3.11 bookworm "$work/tree" >&2
  mkfs.erofs --quiet "$work/python3.11.erofs" "$work/tree"
  rm -rf "$work/tree"
  image_file=$work/python3.11.erofs
fi

# File-backed EROFS mount, as ember does it (mount(8) would set up a loop device for a file);
# a loop device only when the kernel refuses.
if ! "$python" - "$image_file" "$rootfs" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NODEV, MS_NOSUID = 1, 4, 2
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs",
              MS_RDONLY | MS_NODEV | MS_NOSUID, None) != 0:
    e = ctypes.get_errno()
    sys.exit(f"file-backed erofs mount of {sys.argv[1]}: {os.strerror(e)}")
EOF
then
  log "falling back to a loop device"
  mount -t erofs -o ro,nodev,nosuid "$image_file" "$rootfs"
fi
log "image $image_file mounted read-only at $rootfs"

# ---- measure -------------------------------------------------------------------------------
if [[ -z $only || $only == run-vs-peers ]]; then
  "$python" "$here/run_vs_peers.py" --ember "$ember" --image python3.11 --rootfs "$rootfs" \
    --workdir "$work" --cgroup-parent "$cgroup_parent" --verbose \
    ${ember_image_error:+--ember-error "image: $ember_image_error"} \
    "${quick[@]}" "${write_docs[@]}" "${extra[@]}" &
  script_pid=$!
  wait "$script_pid"
  extra=()  # the script arguments were for run_vs_peers.py
fi

# Invocations through the daemon, with the same peers on the same rootfs as the reference. The
# script starts and stops its own daemon (private data/run dirs, cgroup pool ember-bench-daemon).
if [[ -z $only || $only == invoke-latency ]]; then
  "$python" "$here/invoke_latency.py" --ember "$ember" --image python3.11 --rootfs "$rootfs" \
    --workdir "$work" --cgroup-parent "$cgroup_parent" --verbose \
    ${ember_image_error:+--ember-error "image: $ember_image_error"} \
    "${quick[@]}" "${write_docs[@]}" "${extra[@]}" &
  script_pid=$!
  wait "$script_pid"
  extra=()
fi

# Fork boot: latency against a raw fork floor and the peers, density, a burst. Its own private
# daemon (cgroup pool ember-bench-fork); kernel.pid_max is restored if it had to be raised.
if [[ -z $only || $only == fork-boot ]]; then
  "$python" "$here/fork_boot.py" --ember "$ember" --image python3.11 --rootfs "$rootfs" \
    --workdir "$work" --cgroup-parent "$cgroup_parent" --verbose \
    ${ember_image_error:+--ember-error "image: $ember_image_error"} \
    "${quick[@]}" "${write_docs[@]}" "${extra[@]}" &
  script_pid=$!
  wait "$script_pid"
  extra=()
fi

# Cold and warm boot from snapshots against fork/plain boot and the peers' restores (runsc
# checkpoint/restore, runc + CRIU, bare CRIU). Its own private daemon (cgroup pool
# ember-bench-restore); the peers' containers and CRIU images live under $work.
if [[ -z $only || $only == restore ]]; then
  "$python" "$here/restore_boot.py" --ember "$ember" --image python3.11 --rootfs "$rootfs" \
    --workdir "$work" --cgroup-parent "$cgroup_parent" --verbose \
    ${ember_image_error:+--ember-error "image: $ember_image_error"} \
    "${quick[@]}" "${write_docs[@]}" "${extra[@]}" &
  script_pid=$!
  wait "$script_pid"
fi

# The same boot modes through the engine directly (ember-engine-bench beside EMBER_BIN, its own
# data/run dirs and cgroup pool ember-bench-engine), set against the newest restore result (the
# daemon path), which the full run has just written.
if [[ -z $only || $only == engine ]]; then
  "$python" "$here/engine_latency.py" --ember "$ember" --image python3.11 --verbose \
    "${quick[@]}" "${write_docs[@]}" "${extra[@]}" &
  script_pid=$!
  wait "$script_pid"
  extra=()
fi

# The micro costs inside ember: no peers, no image; JSON for the record, the table on stdout.
if [[ -z $only || $only == micro ]]; then
  micro=$(dirname "$ember")/ember-micro-bench
  if [[ -x $micro ]]; then
    mkdir -p "$here/results"
    min_time=0.5
    [[ ${#quick[@]} -gt 0 ]] && min_time=0.1
    "$micro" --benchmark_min_time="$min_time" --benchmark_out_format=json \
      --benchmark_out="$here/results/micro-$(date +%Y%m%d-%H%M%S).json" &
    script_pid=$!
    wait "$script_pid"
  else
    log "no $micro (build the ember-micro-bench target): micro benchmarks not run"
  fi
fi

# The plots and the combined summary, from the newest result of each benchmark (also of those
# not run this time, so --only keeps the summary whole). A failure here costs a picture or the
# summary, never the run's exit status.
# The PNGs in docs/img are rewritten only with --write-docs, like the docs' tables.
plots_out=$here/results/plots
[[ ${#write_docs[@]} -gt 0 ]] && plots_out=$here/../docs/img
"$python" "$here/plots.py" --out "$plots_out" || log "bench/plots.py failed: plots not (all) drawn; results are in bench/results"
"$python" "$here/report.py" "${write_docs[@]}" || log "bench/report.py failed: no suite summary written"
