#!/usr/bin/env python3
"""Start -> exit of `ember run` against crun, runc, gVisor runsc and three floors: unshare+chroot,
unshare+overlay+cgroup (the same namespaces with issue 2's mandated rootfs and cgroup), and
full mandate (C) (all the kernel work issue 2 mandates for a sandbox, in one small C program).

Every tool runs the same command on the same read-only root filesystem (the python3.11 image,
mounted by bench/run.sh), in the same process of this script, interleaved round by round, so
that the machine's drift (other builds, page cache, CPU frequency) hits every tool alike.

    run_vs_peers.py --ember BIN --rootfs DIR [--quick] [--iterations N] [--write-docs]

Timing is wall clock from just before the tool is spawned to just after it has been reaped and
its output read; container deletion and cgroup cleanup happen outside the timed region. The
figures are printed as a markdown table and written as JSON to bench/results/.

A tool that cannot run here is reported with its error (in the table and the JSON); it is never
dropped silently. No assertion is made on any figure: the target check at the end prints
whether it was met and does not change the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# The pieces live in bench/peers/ (this script's directory is on sys.path when it is run).
from peers.host import machine_info, remove_cgroups
from peers.measure import run_tool_once
from peers.report import check_target, markdown, write_docs
from peers.scenarios import MEMORY_FLAG, PYTHON_IN_IMAGE, SCENARIOS
from peers.stats import summarize
from peers.tools import (Baseline, Crun, Ember, FullFloor, HostPython, IsoFloor, Runc, Runsc,
                         Tool, ToolError)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"

WARMUPS = 3


# ---------------------------------------------------------------------------------------------
# Measurement


class Runner:
    def __init__(self, tools: list[Tool], iterations: int, warmups: int, verbose: bool):
        self.tools = tools
        self.iterations = iterations
        self.warmups = warmups
        self.verbose = verbose
        self.seq = 0
        self.tag = f"{os.getpid():x}"

    def next_id(self) -> str:
        self.seq += 1
        return f"{self.tag}-{self.seq}"

    def one(self, tool: Tool, scenario: dict) -> tuple[float, str | None]:
        return run_tool_once(tool, scenario["argv"], scenario["expect"], self.next_id())

    def scenario(self, scenario: dict) -> dict:
        tools = [t for t in self.tools if t.error is None
                 and (scenario["python"] or not t.python_only)]
        samples: dict[str, list[float]] = {t.name: [] for t in tools}
        errors: dict[str, str] = {}
        # Warm-ups: also the check that the tool really runs the scenario here.
        for _ in range(self.warmups):
            for t in tools:
                if t.name in errors:
                    continue
                _, problem = self.one(t, scenario)
                if problem:
                    errors[t.name] = problem
        live = [t for t in tools if t.name not in errors]
        # Interleave: one run of every tool per round, starting each round one tool later, so
        # no tool always follows the same neighbour (runsc's teardown, say).
        for i in range(self.iterations):
            k = i % len(live) if live else 0
            for t in live[k:] + live[:k]:
                if t.name in errors:
                    continue
                ms, problem = self.one(t, scenario)
                if problem:
                    errors[t.name] = f"round {i}: {problem}"
                    continue
                samples[t.name].append(ms)
            if self.verbose:
                print(f"  {scenario['name']}: round {i + 1}/{self.iterations}", file=sys.stderr,
                      end="\r")
        if self.verbose:
            print(file=sys.stderr)
        result = {}
        for t in self.tools:  # tools that could not start at all keep their place, as failed
            if t.error is not None and (scenario["python"] or not t.python_only):
                result[t.name] = {"error": t.error, "n": 0}
        for t in tools:
            if t.name in errors:
                result[t.name] = {"error": errors[t.name], "n": len(samples[t.name])}
                continue
            result[t.name] = summarize(samples[t.name])
        return result



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ember", required=True, help="path to the ember binary")
    ap.add_argument("--image", default="python3.11", help="ember image name")
    ap.add_argument("--rootfs", required=True,
                    help="the same image as a directory (mounted read-only) for the peers")
    ap.add_argument("--workdir", help="scratch directory (default: a new temp dir)")
    ap.add_argument("--quick", action="store_true", help="15 rounds instead of 60")
    ap.add_argument("--iterations", type=int, help="interleaved rounds per scenario")
    ap.add_argument("--warmups", type=int, default=WARMUPS)
    ap.add_argument("--tools", help="comma-separated subset, e.g. ember,crun (full mandate (C): "
                    "fullfloor)")
    ap.add_argument("--scenarios", help="comma-separated subset of true,python-light,python-heavy")
    ap.add_argument("--cgroup-parent", help="cgroup under which the OCI runtimes put containers "
                    "(default /ember-bench/<pid>; removed at exit)")
    ap.add_argument("--ember-hold-image", action="store_true",
                    help="keep one idle ember sandbox alive so the image stays mounted")
    ap.add_argument("--ember-error", help="report ember as unable to run, with this reason")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--write-docs", action="store_true",
                    help=f"replace the text between the markers in {DOCS.relative_to(REPO)}")
    ap.add_argument("--docs", default=str(DOCS), help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("run_vs_peers.py: must run as root (containers, namespaces, cgroups)",
              file=sys.stderr)
        return 2
    rootfs = os.path.realpath(args.rootfs)
    if not os.path.exists(os.path.join(rootfs, PYTHON_IN_IMAGE.lstrip("/"))):
        print(f"run_vs_peers.py: {rootfs} has no {PYTHON_IN_IMAGE}", file=sys.stderr)
        return 2
    iterations = args.iterations or (15 if args.quick else 60)
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ember-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cgroup_parent = args.cgroup_parent or f"/ember-bench/{os.getpid()}"
    # bench/run.sh stops the script with SIGTERM: unwind so the finally blocks clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ember_bin = os.path.realpath(args.ember) if os.path.exists(args.ember) else args.ember
    tools: list[Tool] = [
        Ember(ember_bin, args.image),
        Baseline(rootfs),
        IsoFloor(rootfs, workdir, cgroup_parent),
        FullFloor(ember_bin, args.image, rootfs, workdir, cgroup_parent),
        Crun(rootfs, workdir, cgroup_parent),
        Runc(rootfs, workdir, cgroup_parent),
        Runsc(rootfs, workdir, cgroup_parent),
        HostPython(),
    ]
    if args.tools:
        wanted = set(args.tools.split(","))
        tools = [t for t in tools if t.name in wanted or t.name.split()[0] in wanted
                 or getattr(t, "key", None) in wanted]
    scenarios = SCENARIOS
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        scenarios = [s for s in SCENARIOS if s["name"] in wanted]

    tool_errors = {}
    for t in tools:
        if isinstance(t, Ember) and args.ember_error:
            t.error = args.ember_error
            tool_errors[t.name] = t.error
            print(f"{t.name}: cannot run: {t.error}", file=sys.stderr)
            continue
        try:
            t.setup()
            if isinstance(t, Ember) and args.ember_hold_image:
                t.hold_image()
        except (ToolError, OSError, subprocess.SubprocessError) as e:
            t.error = str(e)
            tool_errors[t.name] = t.error
            print(f"{t.name}: cannot run: {t.error}", file=sys.stderr)

    started = dt.datetime.now()
    results = {
        "benchmark": "run-vs-peers",
        "timestamp": started.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "custom" if args.iterations else ("quick" if args.quick else "full"),
        "iterations": iterations,
        "warmups": args.warmups,
        "memory_limit": MEMORY_FLAG,
        "rootfs": rootfs,
        "image": args.image,
        "machine": machine_info(tools),
        "scenarios": {},
        "scenario_commands": {s["name"]: s["argv"] for s in scenarios},
        "tool_errors": tool_errors,
        "ember_image_held": bool(args.ember_hold_image),
    }
    runner = Runner(tools, iterations, args.warmups, args.verbose)
    try:
        for sc in scenarios:
            print(f"scenario {sc['name']}: {iterations} rounds × "
                  f"{sum(1 for t in tools if t.error is None and (sc['python'] or not t.python_only))}"
                  " tools", file=sys.stderr)
            results["scenarios"][sc["name"]] = runner.scenario(sc)
    finally:
        for t in tools:
            try:
                t.teardown()
            except Exception as e:  # noqa: BLE001
                print(f"warning: {t.name}: teardown: {e}", file=sys.stderr)
        remove_cgroups(cgroup_parent)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results["elapsed_s"] = round((dt.datetime.now() - started).total_seconds(), 1)
    results["machine"]["loadavg_at_end"] = os.getloadavg()[0]
    results["target"] = check_target(results)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"run-vs-peers-{started.strftime('%Y%m%d-%H%M%S')}.json"
    out_file.write_text(json.dumps(results, indent=1) + "\n")

    table = markdown(results)
    print(table)
    print(f"results: {out_file} ({results['elapsed_s']} s)")
    if args.write_docs:
        write_docs(table, Path(args.docs))
        print(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
