#!/usr/bin/env python3
"""Function invocations through `ember daemon`, next to the cold starts of the peers.

Starts a private `ember daemon` (own data dir, run dir and cgroup pool, under a temp dir),
deploys the light and heavy Python handlers of bench/peers/scenarios.py as functions, and times
on the client side, over one keep-alive HTTP/1.1 connection to the daemon's unix socket:

  * warm invoke        `POST /v1/functions/NAME/invoke`, an idle instance exists;
  * plain-boot invoke  `...?boot=plain`: a new sandbox, runtime init and handler import each time
                       (the new instance is deleted after the clock stops);

interleaved round by round with the same handler run cold by the peers of run_vs_peers.py
(`ember run`, unshare+chroot, crun, runc, runsc, host python3). Prints markdown tables with
ratios (peer median / ember median) and the daemon's own Server-Timing phases, and writes JSON to
bench/results/.

    invoke_latency.py --ember BIN --rootfs DIR [--quick] [--iterations N] [--write-docs]

The daemon is stopped with SIGTERM at the end, also on error or Ctrl-C, then `ember cleanup`
runs on its run dir. No assertion is made on any figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from peers.daemon import Client, EmberDaemon, mounts_under
from peers.host import machine_info, remove_cgroups
from peers.invoke_report import BEGIN_MARK, END_MARK, PLAIN, WARM, markdown
from peers.invoke_variants import (InvokeVariant, PeerVariant, Variant, run_group,
                                   summarize_group)
from peers.report import write_docs
from peers.results import remove_scratch, save_results
from peers.scenarios import (EVENT, FUNCTION_HANDLER, FUNCTIONS, MEMORY_FLAG, PYTHON_IN_IMAGE,
                             SCENARIOS)
from peers.tools import (Baseline, Crun, Ember, EmberRunIsolated, HostPython, Runc, Runsc, Tool,
                         ToolError)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"

WARMUPS = 3
DAEMON_CGROUP_NAME = "ember-bench-daemon"
CLI_CGROUP_NAME = "ember-bench-run"


def log(msg: str) -> None:
    print(f"invoke-latency: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------


def write_bundle(root: Path, fn: dict) -> Path:
    bundle = root / "bundles" / fn["name"]
    bundle.mkdir(parents=True, exist_ok=True)
    # keep_alive: the warm instance must outlive the run; max_instances: room for a plain boot
    # beside it, so a forced boot never has to stop the warm instance first (scheduler.cc).
    (bundle / "ember.toml").write_text(
        f'name = "{fn["name"]}"\nruntime = "python3.11"\nhandler = "{FUNCTION_HANDLER}"\n'
        f'image = "python3.11"\nmemory = "{MEMORY_FLAG}iB"\ntimeout = "30s"\n'
        f'keep_alive = "1h"\nmax_instances = 4\n')
    (bundle / "main.py").write_text(fn["module"])
    return bundle


def leftovers(root: Path) -> list[str]:
    found = [f"mount {m}" for m in mounts_under(root)]
    base = Path("/sys/fs/cgroup")
    for name in (DAEMON_CGROUP_NAME, CLI_CGROUP_NAME):
        found += [f"cgroup {p}" for p in base.glob(f"*/{name}")] + \
            [f"cgroup {p}" for p in base.glob(name)]
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ember", required=True, help="path to the ember binary")
    ap.add_argument("--image", default="python3.11", help="ember image name")
    ap.add_argument("--rootfs", required=True,
                    help="the same image as a directory (mounted read-only) for the peers")
    ap.add_argument("--workdir", help="scratch directory for the peers (default: a new temp dir)")
    ap.add_argument("--quick", action="store_true", help="15 rounds instead of 60")
    ap.add_argument("--iterations", type=int, help="interleaved rounds per handler")
    ap.add_argument("--warmups", type=int, default=WARMUPS)
    ap.add_argument("--warm-per-round", type=int, default=5,
                    help="back-to-back warm invocations per round (they are cheap)")
    ap.add_argument("--tools", help="comma-separated subset of the peers, e.g. crun,runc "
                    "(the ember invocations always run)")
    ap.add_argument("--functions", help="comma-separated subset of light,heavy")
    ap.add_argument("--cgroup-parent", help="cgroup of the OCI runtimes' containers "
                    "(default /ember-bench/<pid>; removed at exit)")
    ap.add_argument("--ember-error", help="report ember as unable to run, with this reason")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--write-docs", action="store_true",
                    help=f"replace the text between {BEGIN_MARK} and {END_MARK} in "
                    f"{DOCS.relative_to(REPO)}")
    ap.add_argument("--docs", default=str(DOCS), help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("invoke_latency.py: must run as root (daemon, containers, cgroups)", file=sys.stderr)
        return 2
    rootfs = os.path.realpath(args.rootfs)
    if not os.path.exists(os.path.join(rootfs, PYTHON_IN_IMAGE.lstrip("/"))):
        print(f"invoke_latency.py: {rootfs} has no {PYTHON_IN_IMAGE}", file=sys.stderr)
        return 2
    ember_bin = os.path.realpath(args.ember) if os.path.exists(args.ember) else args.ember
    iterations = args.iterations or (15 if args.quick else 60)
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ember-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cgroup_parent = args.cgroup_parent or f"/ember-bench/{os.getpid()}"
    # The daemon's dir is its own temp dir, 0711: sandboxes (an unprivileged uid) must reach the
    # function code under its data dir, and a parent of mode 0700 would stop them.
    root = Path(tempfile.mkdtemp(prefix="ember-bench-daemon."))
    os.chmod(root, 0o711)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally cleans up

    functions = FUNCTIONS
    if args.functions:
        wanted = set(args.functions.split(","))
        functions = [f for f in FUNCTIONS if f["kind"] in wanted or f["name"] in wanted]
    scenarios = {s["name"]: s for s in SCENARIOS}
    daemon = EmberDaemon(ember_bin, root, DAEMON_CGROUP_NAME, log)
    tools: list[Tool] = [
        EmberRunIsolated(ember_bin, args.image, daemon.data_dir, root / "run-cli",
                         CLI_CGROUP_NAME),
        Baseline(rootfs),
        Crun(rootfs, workdir, cgroup_parent),
        Runc(rootfs, workdir, cgroup_parent),
        Runsc(rootfs, workdir, cgroup_parent),
        HostPython(),
    ]
    if args.tools:
        wanted = set(args.tools.split(","))
        tools = [t for t in tools if t.name in wanted or t.name.split()[0] in wanted]

    started = dt.datetime.now()
    tool_errors: dict[str, str] = {}
    results: dict = {
        "benchmark": "invoke-latency",
        "timestamp": started.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "custom" if args.iterations else ("quick" if args.quick else "full"),
        "iterations": iterations,
        "warmups": args.warmups,
        "warm_per_round": args.warm_per_round,
        "memory_limit": MEMORY_FLAG,
        "image": args.image,
        "rootfs": rootfs,
        "event": EVENT,
        "functions": {},
        "tool_errors": tool_errors,
    }
    client: Client | None = None
    warnings: list[str] = []
    try:
        daemon_error = None
        warm_instances: dict[str, str] = {}
        try:
            if args.ember_error:
                raise ToolError(args.ember_error)
            daemon.provide_image(args.image)
            daemon.start()
            client = Client(daemon.socket)
            results["deploys"] = {}
            for fn in functions:
                results["deploys"][fn["name"]] = daemon.deploy(write_bundle(root, fn))
                idle = [i for i in client.instances()
                        if i["function"] == fn["name"] and i["state"] == "idle"]
                if len(idle) != 1:
                    raise ToolError(f"after deploying {fn['name']}: expected one idle instance, "
                                    f"found {json.dumps(idle)[:300]}")
                warm_instances[fn["name"]] = idle[0]["id"]
            log(f"daemon on {daemon.socket}: "
                + "; ".join(results["deploys"].values()))
        except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
            daemon_error = str(e)
            log(f"ember daemon: cannot run: {daemon_error}")
            tool_errors["ember daemon"] = daemon_error
        for t in tools:
            if isinstance(t, Ember) and args.ember_error:
                t.error = args.ember_error
                tool_errors[t.name] = t.error
                continue
            try:
                t.setup()
            except (ToolError, OSError, subprocess.SubprocessError) as e:
                t.error = str(e)
                tool_errors[t.name] = t.error
                log(f"{t.name}: cannot run: {t.error}")
        results["machine"] = machine_info(tools)
        results["machine"]["versions"] = {"ember daemon": daemon.version(),
                                          **results["machine"]["versions"]}

        ids = (f"{os.getpid():x}-{n}" for n in itertools.count(1))  # container ids
        for fn in functions:
            scenario = scenarios[fn["peer_scenario"]]
            variants: list[Variant] = []
            for name, boot, count in ((WARM, None, args.warm_per_round), (PLAIN, "plain", 1)):
                if daemon_error:
                    v = Variant(name, f"ember daemon: {daemon_error}")
                else:
                    v = InvokeVariant(name, client, fn["name"], boot, warm_instances[fn["name"]],
                                      count)
                variants.append(v)
            variants += [PeerVariant(t, scenario, ids) for t in tools]
            log(f"{fn['title']}: {iterations} rounds × "
                f"{sum(1 for v in variants if v.error is None)} variants")
            measured, errors = run_group(variants, iterations, args.warmups, fn["kind"],
                                         args.verbose)
            summary, server_timing = summarize_group(variants, measured, errors)
            results["functions"][fn["kind"]] = {
                "function": fn["name"], "kind": fn["kind"], "title": fn["title"],
                "peer_command": scenario["argv"], "variants": summary,
                "server_timing": server_timing}
    finally:
        if client is not None:
            client.close()
        for t in tools:
            try:
                t.teardown()
            except Exception as e:  # noqa: BLE001 - the rest must still be cleaned up
                warnings.append(f"{t.name}: teardown: {e}")
        warnings += daemon.stop()
        remove_cgroups(cgroup_parent)
        remove_scratch(root, leftovers(root), workdir, own_workdir, warnings)
        for w in warnings:
            log(f"warning: {w}")

    out_file = save_results(results, "invoke-latency", started, warnings, args.results_dir)

    table = markdown(results)
    print(table)
    print(f"results: {out_file} ({results['elapsed_s']} s)")
    if args.write_docs:
        write_docs(table, Path(args.docs), BEGIN_MARK, END_MARK)
        print(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
