#!/usr/bin/env python3
"""Cold and warm boot: restore-to-answer latency against fork boot, plain boot and the restore
tools of the peers, and the memory of idle restored instances.

Starts a private `ember daemon` (own data dir, run dir and cgroup pool, under a temp dir),
deploys the light and heavy Python handlers of bench/peers/scenarios.py with fork-boot templates,
takes each one's snapshot (`POST /v1/functions/NAME/snapshot`, what `ember snapshot NAME` does)
and measures, in one run:

  1. latency: forced `?boot=warm`, `?boot=cold`, `?boot=fork` and `?boot=plain` invocations,
     each a fresh instance, interleaved round by round with a restore of the same handler by
     gVisor (`runsc checkpoint` once, `runsc restore` per sample), runc + CRIU (`runc
     checkpoint` / `runc restore`) and bare CRIU (`criu dump` / `criu restore` of a host
     python3.11): min, p50, p99, ratios to each peer, targets (warm ≤ 1.5 × fork; cold ≤ 5 ×
     warm for the light handler; ≥ 20 × faster than bare CRIU where it runs);
  2. density: N idle warm-restored instances of the light handler, N fork-booted and a few
     plain-boot ones: PSS per instance (smaps_rollup over each instance's processes) and the
     drop of MemAvailable per instance.

    restore_boot.py --ember BIN --rootfs DIR [--quick] [--criu PATH] [--density N] [--write-docs]

Prints markdown tables, writes bench/results/restore-<timestamp>.json. A peer that cannot run
here (Debian's criu 3.17 on this kernel) is reported with its error. Everything made is removed
at the end, also on error or Ctrl-C (instances, daemon, containers, images, cgroups, temp dirs).
No assertion is made on any figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from peers.daemon import Client, EmberDaemon, mounts_under
from peers.fork_density import measure_instances
from peers.fork_setup import deploy_with_template
from peers.host import machine_info, remove_cgroups
from peers.restore_latency import (ember_variants, measure_handler, read_into_page_cache,
                                   snapshot_record, take_snapshot)
from peers.restore_peers import (CRIU, RUNC, RUNSC, BareCriuPeer, RestorePeer, RuncRestorePeer,
                                 RunscRestorePeer, peer_code, tool_version)
from peers.restore_report import BEGIN_MARK, END_MARK, markdown, write_docs
from peers.results import remove_scratch, save_results
from peers.scenarios import FUNCTIONS, HEAVY_IMPORTS, MEMORY_FLAG, PYTHON_IN_IMAGE
from peers.stats import summarize
from peers.tools import HostPython, ToolError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
DAEMON_CGROUP_NAME = "ember-bench-restore"
DENSITY_WORKERS = 4
PARTS = ("latency", "density")
PEER_IMPORTS = {"light": "json", "heavy": HEAVY_IMPORTS}


def log(msg: str) -> None:
    print(f"restore: {msg}", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ember", required=True, help="path to the ember binary")
    ap.add_argument("--image", default="python3.11", help="ember image name")
    ap.add_argument("--rootfs", required=True, help="the same image mounted read-only (peers)")
    ap.add_argument("--workdir", help="scratch directory for the peers (default: a temp dir)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer samples: 15 rounds, density 50")
    ap.add_argument("--rounds", type=int, help="interleaved latency rounds per handler")
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--per-round", type=int, help="warm, cold and fork boots per round")
    ap.add_argument("--density", type=int, help="idle warm-restored (and fork-booted) instances")
    ap.add_argument("--density-plain", type=int, help="idle plain-boot instances")
    ap.add_argument("--parts", default=",".join(PARTS), help="subset of latency,density")
    ap.add_argument("--functions", help="latency handlers: subset of light,heavy")
    ap.add_argument("--tools", help="peers: subset of runsc,runc,criu")
    ap.add_argument("--criu", default="criu",
                    help="the CRIU binary for runc and bare CRIU (default: criu on PATH)")
    ap.add_argument("--cgroup-parent", help="cgroup of the OCI runtimes' containers")
    ap.add_argument("--ember-error", help="report ember as unable to run, with this reason")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--write-docs", action="store_true",
                    help=f"rewrite {BEGIN_MARK} … {END_MARK} in {DOCS.relative_to(REPO)}")
    ap.add_argument("--docs", default=str(DOCS), help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    q = a.quick
    a.rounds = a.rounds or (15 if q else 40)
    a.per_round = a.per_round or (3 if q else 5)
    a.density = a.density if a.density is not None else (50 if q else 200)
    a.density_plain = a.density_plain if a.density_plain is not None else (10 if q else 20)
    a.parts = [p for p in a.parts.split(",") if p]
    bad = [p for p in a.parts if p not in PARTS]
    if bad:
        ap.error(f"--parts: unknown {','.join(bad)}")
    return a


def make_peers(a, kind: str, workdir: Path, rootfs: str, cgroup_parent: str,
               host_python: HostPython) -> list[RestorePeer]:
    code = peer_code(PEER_IMPORTS[kind])
    wanted = a.tools.split(",") if a.tools else ["runsc", "runc", "criu"]
    peers: list[RestorePeer] = []
    if "runsc" in wanted:
        peers.append(RunscRestorePeer(RUNSC, workdir / f"restore-runsc-{kind}", code, rootfs,
                                      cgroup_parent, error=missing("runsc")))
    if "runc" in wanted:
        peers.append(RuncRestorePeer(RUNC, workdir / f"restore-runc-{kind}", code, rootfs,
                                     cgroup_parent, criu=a.criu,
                                     error=missing("runc") or missing(a.criu)))
    if "criu" in wanted:
        peers.append(BareCriuPeer(CRIU, workdir / f"restore-criu-{kind}", code,
                                  getattr(host_python, "python", None), criu=a.criu,
                                  error=missing(a.criu) or host_python.error))
    return peers


def missing(binary: str) -> str | None:
    return None if shutil.which(binary) else f"{binary} is not installed"


def latency_part(a, client, daemon_error, snapshots, snapshot_errors, peers_of, results) -> None:
    kinds = {f["kind"]: f for f in FUNCTIONS}
    for kind in [k for k in ("light", "heavy") if not a.functions or k in a.functions.split(",")]:
        fn = f"restore-{kind}"
        variants = ember_variants(client, fn, a.per_round, snapshots.get(fn), daemon_error,
                                  snapshot_errors.get(fn))
        peers = peers_of[kind]
        for p in peers:
            if p.error is None:
                log(f"{p.name} ({kind}): checkpoint")
                p.prepare()
                if p.error:
                    log(f"{p.name} ({kind}): cannot run: {p.error}")
        variants += peers
        log(f"latency, {kinds[kind]['title']}: {a.rounds} rounds × "
            f"{sum(1 for v in variants if v.error is None)} variants")
        r = measure_handler(variants, a.rounds, a.warmups, kind, a.verbose)
        for p in peers:  # restore start → the command's exit, beside the time to the answer
            kept = p.exit_ms[a.warmups:]
            if kept and "error" not in r["variants"].get(p.name, {}):
                r["variants"][p.name]["exit"] = summarize(kept)
        results["latency"][kind] = dict(r, title=kinds[kind]["title"], function=fn,
                                        snapshot=snapshot_record(client, fn) if client else None)
        for p in peers:
            p.teardown()


def density_part(a, client, daemon, daemon_error, snapshots, results) -> None:
    if daemon_error:
        results["density"] = {"error": f"ember daemon: {daemon_error}"}
        return
    fn = "restore-light"
    density: dict = {"workers": DENSITY_WORKERS, "function": fn}
    results["density"] = density
    snap = snapshots.get(fn)
    if snap:
        read_into_page_cache(snap["path"])
        log(f"density: {a.density} warm-restored instances")
        density["warm"] = measure_instances(client, [fn], "warm", a.density, DENSITY_WORKERS,
                                            daemon.pid, DAEMON_CGROUP_NAME, log, a.verbose)
    else:
        density["warm"] = {"error": "no snapshot of restore-light", "requested": a.density}
    log(f"density: {a.density} fork-booted instances")
    density["fork"] = measure_instances(client, [fn], "fork", a.density, DENSITY_WORKERS,
                                        daemon.pid, DAEMON_CGROUP_NAME, log, a.verbose)
    if a.density_plain:
        log(f"density: {a.density_plain} plain-boot instances")
        density["plain"] = measure_instances(client, [fn], "plain", a.density_plain, 2,
                                             daemon.pid, DAEMON_CGROUP_NAME, log, a.verbose)


def main() -> int:
    a = parse_args()
    if os.geteuid() != 0:
        print("restore_boot.py: must run as root (daemon, containers, CRIU)", file=sys.stderr)
        return 2
    rootfs = os.path.realpath(a.rootfs)
    if not os.path.exists(os.path.join(rootfs, PYTHON_IN_IMAGE.lstrip("/"))):
        print(f"restore_boot.py: {rootfs} has no {PYTHON_IN_IMAGE}", file=sys.stderr)
        return 2
    ember_bin = os.path.realpath(a.ember) if os.path.exists(a.ember) else a.ember
    own_workdir = a.workdir is None
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="ember-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cgroup_parent = a.cgroup_parent or f"/ember-bench/{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="ember-bench-restore."))
    os.chmod(root, 0o711)  # sandboxes (an unprivileged uid) must reach the code under it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally cleans up

    kinds = {f["kind"]: f for f in FUNCTIONS}
    latency_kinds = [k for k in ("light", "heavy")
                     if not a.functions or k in a.functions.split(",")]
    names = sorted({f"restore-{k}" for k in (latency_kinds if "latency" in a.parts else [])}
                   | ({"restore-light"} if "density" in a.parts else set()))
    daemon = EmberDaemon(ember_bin, root, DAEMON_CGROUP_NAME, log)
    host_python = HostPython()
    try:
        host_python.setup()
    except ToolError as e:
        host_python.error = str(e)
    started = dt.datetime.now()
    tool_errors: dict[str, str] = {}
    warnings: list[str] = []
    results: dict = {
        "benchmark": "restore", "timestamp": started.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if a.quick else "full", "rounds": a.rounds, "warmups": a.warmups,
        "per_round": a.per_round, "memory_limit": MEMORY_FLAG, "image": a.image,
        "parts": a.parts, "criu": a.criu, "latency": {}, "tool_errors": tool_errors}
    client: Client | None = None
    snapshots: dict[str, dict] = {}
    snapshot_errors: dict[str, str] = {}
    peers_of = {k: make_peers(a, k, workdir, rootfs, cgroup_parent, host_python)
                for k in latency_kinds} if "latency" in a.parts else {}
    try:
        daemon_error = None
        try:
            if a.ember_error:
                raise ToolError(a.ember_error)
            daemon.provide_image(a.image)
            daemon.start()
            client = Client(daemon.socket)
            for name in names:
                kind = name.split("-", 1)[1]
                deploy_with_template(daemon, client, root, name, kinds[kind]["module"])
                try:
                    snapshots[name] = take_snapshot(client, name)
                    log(f"{name}: snapshot {snapshots[name].get('size_bytes', 0) / 2**20:.1f} "
                        f"MiB, {snapshots[name].get('working_set_pages', '?')} working-set pages")
                except (ValueError, OSError) as e:
                    snapshot_errors[name] = str(e)
                    tool_errors[f"ember snapshot {name}"] = str(e)
                    log(f"ember snapshot {name}: {e}")
            results["snapshots"] = snapshots
        except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
            daemon_error = str(e)
            tool_errors["ember daemon"] = daemon_error
            log(f"ember daemon: cannot run: {daemon_error}")
        results["machine"] = machine_info([])
        results["machine"]["versions"] = {
            "ember daemon": daemon.version(), "runsc": tool_version(["runsc", "--version"]),
            "runc": tool_version(["runc", "--version"]),
            "criu": f"{a.criu}: {tool_version([a.criu, '--version'])}",
            "host python": host_python.version or host_python.error or "?"}
        for name, part in (("latency", lambda: latency_part(
                               a, client, daemon_error, snapshots, snapshot_errors, peers_of,
                               results)),
                           ("density", lambda: density_part(a, client, daemon, daemon_error,
                                                            snapshots, results))):
            if name not in a.parts:
                continue
            try:
                part()
            except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
                log(f"{name}: failed: {e}")  # the other part still runs, cleanup still happens
                tool_errors[f"{name} (part of this benchmark)"] = str(e)
        for kind, peers in peers_of.items():
            for p in peers:
                if p.error:
                    tool_errors[f"{p.name} ({kind})"] = p.error
    finally:
        for peers in peers_of.values():
            for p in peers:
                try:
                    p.teardown()
                except Exception as e:  # noqa: BLE001 - the rest must still be cleaned up
                    warnings.append(f"{p.name}: teardown: {e}")
        if client is not None:
            client.close()
        warnings += daemon.stop()
        remove_cgroups(cgroup_parent)
        left = [f"mount {m}" for m in mounts_under(root)] + \
            [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{DAEMON_CGROUP_NAME}")]
        remove_scratch(root, left, workdir, own_workdir, warnings)
        for w in warnings:
            log(f"warning: {w}")

    out_file = save_results(results, "restore", started, warnings, a.results_dir)
    table = markdown(results)
    print(table)
    print(f"results: {out_file} ({results['elapsed_s']} s)")
    if a.write_docs:
        write_docs(table, Path(a.docs))
        print(f"updated {a.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
