#!/usr/bin/env python3
"""Fork boot: latency against the raw floor and the peers, density, and burst concurrency.

Starts a private `ember daemon` (own data dir, run dir and cgroup pool, under a temp dir; queue
large enough for the burst), deploys the light and heavy Python handlers of
bench/peers/scenarios.py with fork-boot templates, and measures, in one run:

  1. latency: `?boot=fork` invocations, each a fresh fork-booted instance, interleaved round by
     round with the raw floor (bench/peers/fork_floor.py: host python3.11 forking on request),
     the isolated floor (the same, each child entering a cgroup, new mount/ipc/uts/net/cgroup
     namespaces, a tmpfs + overlay of the image and a /proc before it answers), `?boot=plain`
     and the cold starts of crun, runc and runsc; p50/p99/min, ratios, targets, the mean of
     each Server-Timing phase;
  2. density: N idle fork-booted instances (and a few plain-boot ones, and idle crun
     containers): PSS and MemAvailable drop per instance, the template's PSS;
  3. burst: B forced fork boots written at once: boots/s, p50/p99 of boot and latency; the same
     burst against the raw and the isolated floor.

    fork_boot.py --ember BIN --rootfs DIR [--quick] [--density N] [--burst B] [--write-docs]

Prints markdown tables, writes bench/results/fork-boot-<timestamp>.json. Everything made is
removed at the end, also on error or Ctrl-C (instances, daemon, fork servers, containers,
kernel.pid_max). No assertion is made on any figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers.daemon import Client, EmberDaemon, mounts_under
from peers.fork_burst import run_burst
from peers.results import remove_scratch, save_results
from peers.fork_density import PidMax, live_pids, measure_instances
from peers.fork_floor import FloorError, FloorServer, floor_burst
from peers.fork_latency import (FLOOR, FORK, ISO_FLOOR, PLAIN, ForcedBootVariant, FloorVariant,
                                measure_handler)
from peers.fork_peer_idle import crun_idle, quoted
from peers.fork_report import BEGIN_MARK, END_MARK, markdown, write_docs
from peers.fork_setup import (MAX_INSTANCES_CAP, delete_function_instances,
                              delete_instances, deploy_with_template, wait_template)
from peers.host import machine_info, remove_cgroups
from peers.invoke_variants import PeerVariant, Variant
from peers.scenarios import (EVENT, EXPECTED_ANSWER, FUNCTIONS, MEMORY_FLAG, PYTHON_IN_IMAGE,
                             SCENARIOS)
from peers.tools import Crun, HostPython, Runc, Runsc, Tool, ToolError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
DAEMON_CGROUP_NAME = "ember-bench-fork"
DENSITY_WORKERS = 8
PARTS = ("latency", "burst", "density")  # the burst first: before density's teardown churn
BURST_SETTLE_S = 2.0
WARMUPS_FLOOR_BURST = 20


def log(msg: str) -> None:
    print(f"fork-boot: {msg}", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ember", required=True, help="path to the ember binary")
    ap.add_argument("--image", default="python3.11", help="ember image name")
    ap.add_argument("--rootfs", required=True, help="the same image mounted read-only (peers)")
    ap.add_argument("--workdir", help="scratch directory for the peers (default: a temp dir)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer samples: 10 rounds, density 200, burst 200")
    ap.add_argument("--rounds", type=int, help="interleaved latency rounds per handler")
    ap.add_argument("--warmups", type=int, default=3)
    ap.add_argument("--per-round", type=int, help="fork boots (and floor requests) per round")
    ap.add_argument("--density", type=int, help="idle fork-booted instances (≤ 10000 tested)")
    ap.add_argument("--density-plain", type=int, help="idle plain-boot instances")
    ap.add_argument("--crun-idle", type=int, help="idle crun containers (0: quote host-facts)")
    ap.add_argument("--burst", type=int, help="invocations fired at once")
    ap.add_argument("--parts", default=",".join(PARTS), help="subset of latency,burst,density")
    ap.add_argument("--functions", help="latency handlers: subset of light,heavy")
    ap.add_argument("--tools", help="latency peers: subset of crun,runc,runsc")
    ap.add_argument("--no-isolated-floor", dest="isolated_floor", action="store_false",
                    help="leave the isolated floor out of the latency rounds and the burst")
    ap.add_argument("--boot-threads", type=int, help="the daemon's --boot-threads")
    ap.add_argument("--cgroup-parent", help="cgroup of the OCI runtimes' containers")
    ap.add_argument("--ember-error", help="report ember as unable to run, with this reason")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--write-docs", action="store_true",
                    help=f"rewrite {BEGIN_MARK} … {END_MARK} in {DOCS.relative_to(REPO)}")
    ap.add_argument("--docs", default=str(DOCS), help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    q = a.quick
    a.rounds = a.rounds or (10 if q else 40)
    a.per_round = a.per_round or (5 if q else 10)
    a.density = a.density if a.density is not None else (200 if q else 2000)
    a.density_plain = a.density_plain if a.density_plain is not None else (20 if q else 50)
    a.crun_idle = a.crun_idle if a.crun_idle is not None else (5 if q else 20)
    a.burst = a.burst if a.burst is not None else (200 if q else 1000)
    a.parts = [p for p in a.parts.split(",") if p]
    bad = [p for p in a.parts if p not in PARTS]
    if bad:
        ap.error(f"--parts: unknown {','.join(bad)}")
    return a


def check_density_target(fork: dict) -> str:
    alive, requested = fork.get("started", 0), fork.get("requested", 0)
    pss = fork.get("pss_kib", {}).get("mean")
    if pss is None:
        return "not checked (no figure)"
    if alive >= 10000:
        count = "met"
    elif requested < 10000:
        count = "not tried in this run (--density 10000)"
    else:
        count = "NOT met"
    return (f"{alive} alive of {requested} requested: 10,000 {count}; PSS mean "
            f"{pss / 1024:.2f} MiB: ≤ 1 MiB {'met' if pss <= 1024 else 'NOT met'}")


def check_burst_target(b: dict) -> str:
    rate, p99 = b.get("boots_per_s") or 0, b.get("boot_ms", {}).get("p99")
    if p99 is None:
        return "not checked (no successful boot)"
    return (f"{rate:.0f} boots/s ({'met' if rate >= 1000 else 'NOT met'}), p99 boot "
            f"{p99:.2f} ms ({'met' if p99 <= 10 else 'NOT met'})")


class Run:
    """What the parts of the benchmark share."""

    def __init__(self, args, client, daemon, daemon_error, root, light_names, peers, crun,
                 host_python, workdir, floors, pid_max, ids, tool_errors, log):
        self.a, self.client, self.daemon, self.daemon_error = args, client, daemon, daemon_error
        self.root, self.light_names, self.peers, self.crun = root, light_names, peers, crun
        self.host_python, self.workdir, self.floors = host_python, workdir, floors
        self.pid_max, self.ids, self.tool_errors, self.log = pid_max, ids, tool_errors, log
        self.functions: list[str] = []  # deployed
        self.rootfs, self.cgroup_parent = "", ""  # the image's root; the peers' cgroup parent
        self.warnings: list[str] = []

    def fresh_daemon(self) -> None:
        """Restarts the daemon (no instance is left, `ember cleanup` empties its pools), so
        each part starts from the same state: a burst does not inherit the cgroups a density
        run made, nor the other way round. The functions stay deployed; their templates are
        rebuilt at start."""
        self.client.close()
        self.warnings += self.daemon.stop()
        self.daemon.start()
        self.client = Client(self.daemon.socket)
        for name in self.functions:
            wait_template(self.client, name)
        delete_function_instances(self.client, self.functions)


def latency_part(ctx: Run, results: dict) -> None:
    a, kinds = ctx.a, {f["kind"]: f for f in FUNCTIONS}
    scenarios = {s["name"]: s for s in SCENARIOS}
    for kind in [k for k in ("light", "heavy") if not a.functions or k in a.functions.split(",")]:
        fn = kinds[kind]
        floor_error = start_floor(ctx, kind, fn["module"], isolated=False)
        iso_error = start_floor(ctx, kind, fn["module"], isolated=True) \
            if a.isolated_floor else None
        variants: list[Variant] = []
        for name, mode, count in ((FORK, "fork", a.per_round), (PLAIN, "plain", 1)):
            variants.append(
                Variant(name, f"ember daemon: {ctx.daemon_error}") if ctx.daemon_error
                else ForcedBootVariant(name, ctx.client, f"fork-{kind}", mode, count))
        variants.append(FloorVariant(FLOOR, ctx.floors.get(kind), a.per_round, floor_error))
        if a.isolated_floor:
            variants.append(FloorVariant(ISO_FLOOR, ctx.floors.get(f"{kind}-isolated"),
                                         a.per_round, iso_error))
        variants += [PeerVariant(t, scenarios[fn["peer_scenario"]], ctx.ids) for t in ctx.peers]
        ctx.log(f"latency, {fn['title']}: {a.rounds} rounds × "
                f"{sum(1 for v in variants if v.error is None)} variants")
        r = measure_handler(variants, a.rounds, a.warmups, kind, a.verbose)
        results["latency"][kind] = dict(r, title=fn["title"], function=f"fork-{kind}",
                                        peer_command=scenarios[fn["peer_scenario"]]["argv"])
        for key in (kind, f"{kind}-isolated"):
            if key in ctx.floors:
                stop_floor(ctx, ctx.floors.pop(key))


def start_floor(ctx: Run, kind: str, module: str, isolated: bool) -> str | None:
    """Starts the raw (or isolated) floor's fork server as ctx.floors[kind(-isolated)]; the
    reason when it cannot run."""
    name = ISO_FLOOR if isolated else FLOOR
    if ctx.host_python.error:
        return f"no host python: {ctx.host_python.error}"
    key = f"{kind}-isolated" if isolated else kind
    ctx.floors[key] = FloorServer(ctx.host_python.python, module, ctx.workdir, kind,
                                  **isolation_args(ctx, isolated))
    try:
        ctx.floors[key].start()
    except (FloorError, OSError) as e:
        stop_floor(ctx, ctx.floors.pop(key))
        ctx.tool_errors[f"{name} {kind}"] = str(e)
        return str(e)
    return None


def isolation_args(ctx: Run, isolated: bool) -> dict:
    return {"lower": ctx.rootfs, "cgroup_parent": ctx.cgroup_parent} if isolated else {}


def stop_floor(ctx: Run, server: FloorServer) -> None:
    server.stop()
    ctx.warnings += server.warnings


def burst_part(ctx: Run, results: dict) -> None:
    a = ctx.a
    if ctx.daemon_error:
        # The floors' bursts do not need ember: they still say what the machine can do.
        burst = {"error": f"ember daemon: {ctx.daemon_error}", "requested": a.burst}
        results["burst"] = burst
    else:
        fns = ctx.light_names[:math.ceil(a.burst / MAX_INSTANCES_CAP)]
        ctx.fresh_daemon()
        time.sleep(BURST_SETTLE_S)
        ctx.log(f"burst: {a.burst} forced fork boots at once over {len(fns)} function(s)")
        burst = run_burst(ctx.daemon.socket, fns, a.burst)
        made = burst.pop("ids", [])
        burst["target"] = check_burst_target(burst) if "error" not in burst else None
        results["burst"] = burst
        delete_instances(ctx.client, made, timeout_s=max(120.0, len(made) * 0.05))
    burst["floor"] = floor_burst_part(ctx, a.burst, isolated=False)
    if a.isolated_floor:
        time.sleep(BURST_SETTLE_S)  # the raw floor's children are gone
        burst["isolated_floor"] = floor_burst_part(ctx, a.burst, isolated=True)
        # The kernel tears the children's network namespaces down later, in a workqueue
        # (cleanup_net): let it finish before the next part is measured.
        time.sleep(2 * BURST_SETTLE_S)


def floor_burst_part(ctx: Run, n: int, isolated: bool) -> dict:
    """The same burst against the raw floor (an unsandboxed fork server), or the isolated
    floor (the same, each child doing the minimum isolation), in the same run."""
    if ctx.host_python.error:
        return {"error": f"no host python: {ctx.host_python.error}", "requested": n}
    light = {f["kind"]: f for f in FUNCTIONS}["light"]
    server = FloorServer(ctx.host_python.python, light["module"], ctx.workdir, "burst",
                         **isolation_args(ctx, isolated))
    try:
        server.start()
        for _ in range(WARMUPS_FLOOR_BURST):
            server.request(EVENT.encode())
        ctx.log(f"burst: {n} requests at once to the {'isolated' if isolated else 'raw'} "
                "fork floor")
        return floor_burst(server, EVENT.encode(), n, json.loads(EXPECTED_ANSWER))
    except (FloorError, OSError) as e:
        return {"error": str(e), "requested": n}
    finally:
        stop_floor(ctx, server)


def density_part(ctx: Run, results: dict) -> None:
    if ctx.daemon_error:
        return
    ctx.fresh_daemon()
    a, client, daemon = ctx.a, ctx.client, ctx.daemon
    fns = ctx.light_names[:math.ceil(a.density / MAX_INSTANCES_CAP)]
    density: dict = {"workers": DENSITY_WORKERS}
    results["density"] = density
    # Two tasks per instance at most (one seen), and room for the rest of the host.
    density["limits"] = ctx.pid_max.ensure(live_pids() + 2 * a.density + 4096)
    ctx.log(f"density: {a.density} fork-booted instances over {len(fns)} function(s)")
    density["fork"] = measure_instances(client, fns, "fork", a.density, DENSITY_WORKERS,
                                        daemon.pid, DAEMON_CGROUP_NAME, ctx.log, a.verbose)
    density["target"] = check_density_target(density["fork"])
    if a.density_plain:
        ctx.log(f"density: {a.density_plain} plain-boot instances")
        density["plain"] = measure_instances(client, fns[:1], "plain", a.density_plain, 2,
                                             daemon.pid, DAEMON_CGROUP_NAME, ctx.log, a.verbose)
    if a.crun_idle:
        ctx.log(f"density: {a.crun_idle} idle crun containers")
        density["crun"] = crun_idle(ctx.crun, a.crun_idle, ctx.ids, ctx.log)
    else:
        density["crun"] = quoted("not measured (--crun-idle 0)")


def main() -> int:
    a = parse_args()
    if os.geteuid() != 0:
        print("fork_boot.py: must run as root (daemon, containers, sysctl)", file=sys.stderr)
        return 2
    rootfs = os.path.realpath(a.rootfs)
    if not os.path.exists(os.path.join(rootfs, PYTHON_IN_IMAGE.lstrip("/"))):
        print(f"fork_boot.py: {rootfs} has no {PYTHON_IN_IMAGE}", file=sys.stderr)
        return 2
    ember_bin = os.path.realpath(a.ember) if os.path.exists(a.ember) else a.ember
    own_workdir = a.workdir is None
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="ember-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cgroup_parent = a.cgroup_parent or f"/ember-bench/{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="ember-bench-fork."))
    os.chmod(root, 0o711)  # sandboxes (an unprivileged uid) must reach the code under it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally cleans up

    kinds = {f["kind"]: f for f in FUNCTIONS}
    latency_kinds = [k for k in ("light", "heavy")
                     if not a.functions or k in a.functions.split(",")]  # deployed below
    scale = max(a.density if "density" in a.parts else 0, a.burst if "burst" in a.parts else 0)
    light_names = ["fork-light"] + [f"fork-light-{i}" for i in
                                    range(2, math.ceil(scale / MAX_INSTANCES_CAP) + 1)]
    flags = ["--queue-size", str(max(1000, a.burst) + 100)]
    if a.boot_threads:
        flags += ["--boot-threads", str(a.boot_threads)]
    daemon = EmberDaemon(ember_bin, root, DAEMON_CGROUP_NAME, log, daemon_flags=flags)
    host_python = HostPython()
    peers: list[Tool] = [Crun(rootfs, workdir, cgroup_parent), Runc(rootfs, workdir, cgroup_parent),
                         Runsc(rootfs, workdir, cgroup_parent)]
    if a.tools:
        peers = [t for t in peers if t.name in a.tools.split(",")]
    crun = next((t for t in peers if t.name == "crun"), None) or \
        Crun(rootfs, workdir, cgroup_parent)
    started = dt.datetime.now()
    tool_errors: dict[str, str] = {}
    warnings: list[str] = []
    results: dict = {
        "benchmark": "fork-boot", "timestamp": started.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if a.quick else "full", "rounds": a.rounds, "warmups": a.warmups,
        "per_round": a.per_round, "memory_limit": MEMORY_FLAG, "image": a.image,
        "daemon_flags": flags, "parts": a.parts, "latency": {}, "tool_errors": tool_errors}
    client: Client | None = None
    floors: dict[str, FloorServer] = {}
    pid_max = PidMax(log)
    ids = (f"{os.getpid():x}-{n}" for n in itertools.count(1))  # container ids (run.sh's form)
    try:
        daemon_error = None
        try:
            if a.ember_error:
                raise ToolError(a.ember_error)
            daemon.provide_image(a.image)
            daemon.start()
            client = Client(daemon.socket)
            deploys = {}
            for kind in latency_kinds if "latency" in a.parts else []:
                deploys[f"fork-{kind}"] = deploy_with_template(
                    daemon, client, root, f"fork-{kind}", kinds[kind]["module"])[0]
            for name in light_names if {"density", "burst"} & set(a.parts) else []:
                if name not in deploys:
                    deploys[name] = deploy_with_template(daemon, client, root, name,
                                                         kinds["light"]["module"])[0]
            results["deploys"] = deploys
            log(f"daemon on {daemon.socket} ({' '.join(flags)}): {len(deploys)} functions with "
                "ready templates")
        except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
            daemon_error = str(e)
            tool_errors["ember daemon"] = daemon_error
            log(f"ember daemon: cannot run: {daemon_error}")
        for t in peers + [host_python] + ([crun] if crun not in peers else []):
            try:
                t.setup()
            except (ToolError, OSError, subprocess.SubprocessError) as e:
                t.error = str(e)
                tool_errors[t.name] = t.error
                log(f"{t.name}: cannot run: {t.error}")
        results["machine"] = machine_info(peers)
        results["machine"]["versions"] = {"ember daemon": daemon.version(),
                                          "raw floor": host_python.version,
                                          **({"isolated floor": f"{host_python.version}, "
                                              "unshare(NS|IPC|UTS|NET|CGROUP) per child"}
                                             if a.isolated_floor else {}),
                                          **results["machine"]["versions"]}

        ctx = Run(a, client, daemon, daemon_error, root, light_names, peers, crun, host_python,
                  workdir, floors, pid_max, ids, tool_errors, log)
        ctx.functions = list(results.get("deploys", {}))
        ctx.rootfs, ctx.cgroup_parent = rootfs, cgroup_parent
        for name, part in (("latency", latency_part), ("burst", burst_part),
                           ("density", density_part)):
            if name not in a.parts:
                continue
            try:
                part(ctx, results)
            except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
                # One part failing (the daemon stopped answering, say) is reported; the
                # others still run and everything is still cleaned up.
                log(f"{name}: failed: {e}")
                tool_errors[f"{name} (part of this benchmark)"] = str(e)
            finally:
                client = ctx.client  # a fresh daemon comes with a new connection
                warnings += ctx.warnings
                ctx.warnings = []
    finally:
        for f in floors.values():
            f.stop()
            warnings += f.warnings
        if client is not None:
            client.close()
        for t in peers + ([crun] if crun not in peers else []):
            try:
                t.teardown()
            except Exception as e:  # noqa: BLE001 - the rest must still be cleaned up
                warnings.append(f"{t.name}: teardown: {e}")
        warnings += daemon.stop()
        restored = pid_max.restore()
        if restored:
            warnings.append(restored)
        remove_cgroups(cgroup_parent)
        left = [f"mount {m}" for m in mounts_under(root)] + \
            [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{DAEMON_CGROUP_NAME}")]
        remove_scratch(root, left, workdir, own_workdir, warnings)
        for w in warnings:
            log(f"warning: {w}")

    out_file = save_results(results, "fork-boot", started, warnings, a.results_dir)
    table = markdown(results)
    print(table)
    print(f"results: {out_file} ({results['elapsed_s']} s)")
    if a.write_docs:
        write_docs(table, Path(a.docs))
        print(f"updated {a.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
