#!/usr/bin/env python3
"""Invoke latency per boot mode through the engine directly: ember-engine-bench (bench/engine)
runs the engine in its own process — no daemon, no HTTP, no client — beside the same boot modes
through the daemon, so the difference is what the API path costs.

Deploys the light and heavy Python handlers of bench/peers/scenarios.py (with fork-boot
templates) into a private data dir (the python3.11 image linked from the main store, as the other
scenarios do), takes their snapshots, and times forced warm, cold, fork and plain boots, each a
fresh instance, interleaved round by round, from Engine::Invoke to its done callback. Right
before, the same boots through a private `ember daemon` (peers/engine_daemon.py), so both paths
see the same load; `--daemon-path newest` takes the daemon figures from the newest restore result
instead (bench/restore_boot.py, the same handlers and forced boots), named in the output.

    engine_latency.py --ember BIN [--quick] [--rounds N] [--modes warm,cold,fork,plain]
                      [--functions light,heavy] [--daemon-results FILE] [--write-docs]

Prints a markdown table per handler, writes bench/results/engine-latency-<timestamp>.json.
Everything made is removed at the end, also on error (the private dirs, the cgroup pool
ember-bench-engine and the daemon's ember-bench-engine-daemon). No assertion is made on any figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from peers.daemon import EmberDaemon, mounts_under
from peers.engine_daemon import DAEMON_CGROUP_NAME, measure_daemon_path
from peers.engine_report import (BEGIN_MARK, END_MARK, daemon_reference, markdown, ratios,
                                 summarize_engine)
from peers.fork_setup import write_bundle
from peers.host import machine_info
from peers.report import write_docs
from peers.results import remove_scratch, save_results
from peers.scenarios import EVENT, EXPECTED_ANSWER, FUNCTIONS, MEMORY_FLAG
from peers.tools import ToolError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
CGROUP_NAME = "ember-bench-engine"
RUN_TIMEOUT_S = 3600


def log(msg: str) -> None:
    print(f"engine-latency: {msg}", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ember", required=True, help="path to the ember binary")
    ap.add_argument("--engine-bench", help="ember-engine-bench (default: beside --ember)")
    ap.add_argument("--image", default="python3.11", help="ember image name")
    ap.add_argument("--quick", action="store_true", help="fewer samples: 15 rounds")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (one boot per mode each)")
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--modes", default="warm,cold,fork,plain")
    ap.add_argument("--functions", default="light,heavy", help="subset of light,heavy")
    ap.add_argument("--daemon-path", choices=("same-run", "newest"), default="same-run",
                    help="the daemon-path figures: measured in this run, or the newest restore "
                         "result's")
    ap.add_argument("--daemon-results", type=Path,
                    help="the restore result with the daemon-path figures (implies newest)")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--write-docs", action="store_true",
                    help=f"rewrite {BEGIN_MARK} … {END_MARK} in {DOCS.relative_to(REPO)}")
    ap.add_argument("--docs", default=str(DOCS), help=argparse.SUPPRESS)
    # Accepted for bench/run.sh's common arguments; this benchmark has no peers.
    for unused in ("--rootfs", "--workdir", "--cgroup-parent", "--ember-error"):
        ap.add_argument(unused, help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    a.rounds = a.rounds or (15 if a.quick else 40)
    return a


def run_engine_bench(a, binary: str, daemon: EmberDaemon, bundles: list[Path],
                     out: Path) -> dict:
    """Runs ember-engine-bench on the bundles; its JSON."""
    cmd = [binary, "--data-dir", str(daemon.data_dir), "--run-dir", str(daemon.run_dir),
           "--cgroup-name", CGROUP_NAME, "--agent-dir", str(Path(a.ember).parent),
           "--modes", a.modes, "--rounds", str(a.rounds), "--warmups", str(a.warmups),
           "--event", EVENT, "--expect", EXPECTED_ANSWER, "--json", str(out)]
    for b in bundles:
        cmd += ["--function", str(b)]
    if a.verbose:
        log(" ".join(cmd))
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"ember-engine-bench ran past {RUN_TIMEOUT_S} s") from e
    for line in done.stderr.strip().splitlines()[-10:]:
        log(f"ember-engine-bench: {line}")
    if done.returncode != 0:
        raise ToolError(f"ember-engine-bench exited with {done.returncode}: "
                        f"{done.stderr.strip()[-600:]}")
    return json.loads(out.read_text())


def main() -> int:
    a = parse_args()
    if os.geteuid() != 0:
        print("engine_latency.py: must run as root (the engine builds sandboxes)",
              file=sys.stderr)
        return 2
    ember_bin = os.path.realpath(a.ember) if os.path.exists(a.ember) else a.ember
    a.ember = ember_bin
    binary = a.engine_bench or str(Path(ember_bin).parent / "ember-engine-bench")
    if not os.access(binary, os.X_OK):
        print(f"engine_latency.py: no {binary} (build the ember-engine-bench target)",
              file=sys.stderr)
        return 2
    wanted = [k for k in a.functions.split(",") if k]
    fns = [f for f in FUNCTIONS if f["kind"] in wanted]
    root = Path(tempfile.mkdtemp(prefix="ember-bench-engine."))
    os.chmod(root, 0o711)  # sandboxes (an unprivileged uid) must reach the code under it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally cleans up
    daemon = EmberDaemon(ember_bin, root, CGROUP_NAME, log)  # its dirs and `ember cleanup` only
    started = dt.datetime.now()
    warnings: list[str] = []
    errors: dict[str, str] = {}
    reference: dict | None = None
    results: dict = {
        "benchmark": "engine-latency", "timestamp": started.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if a.quick else "full", "rounds": a.rounds, "warmups": a.warmups,
        "modes": a.modes.split(","), "memory_limit": MEMORY_FLAG, "image": a.image,
        "machine": machine_info([]), "errors": errors}
    results["machine"]["versions"] = {"ember": daemon.version()}
    try:
        try:
            daemon.provide_image(a.image)
            bundles = [write_bundle(root, f"engine-{f['kind']}", f["module"]) for f in fns]
            if a.daemon_path == "same-run" and a.daemon_results is None:
                reference = measure_daemon_path(ember_bin, a.image, root / "daemon", fns,
                                                a.rounds, a.warmups, log, a.verbose, warnings)
            log(f"{a.rounds} rounds × {len(a.modes.split(','))} modes × {len(fns)} handlers "
                "through the engine")
            raw = run_engine_bench(a, binary, daemon, bundles, root / "engine.json")
            results["raw"] = raw
            results["engine"] = summarize_engine(raw, {f"engine-{f['kind']}": f["kind"]
                                                       for f in fns})
        except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
            errors["ember-engine-bench"] = str(e)
            log(f"ember-engine-bench: {e}")
    finally:
        warnings += daemon.stop()  # `ember cleanup`: the pool, should the binary have died
        left = [f"mount {m}" for m in mounts_under(root)] + \
            [f"cgroup {p}" for n in (CGROUP_NAME, DAEMON_CGROUP_NAME)
             for p in Path("/sys/fs/cgroup").glob(f"*/{n}")]
        remove_scratch(root, left, root, False, warnings)
        for w in warnings:
            log(f"warning: {w}")
    if reference is None:
        reference = daemon_reference(Path(a.results_dir), a.daemon_results)
    results["daemon_reference"] = reference
    results["ratios"] = ratios(results.get("engine") or {}, reference)
    out_file = save_results(results, "engine-latency", started, warnings, a.results_dir)
    table = markdown(results)
    print(table)
    print(f"results: {out_file} ({results['elapsed_s']} s)")
    if a.write_docs:
        write_docs(table, Path(a.docs), BEGIN_MARK, END_MARK)
        print(f"updated {a.docs}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
