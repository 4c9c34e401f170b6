"""The daemon path of bench/engine_latency.py, in the same run: a private `ember daemon` with the
same handlers, fork-boot templates and snapshots, and forced warm, cold, fork and plain boots,
each a fresh instance, interleaved round by round (bench/restore_boot.py's ember variants, one
boot per mode per round, as ember-engine-bench does). Measured right before the engine path, so
both see the same machine and the same load: the difference is what HTTP, the unix socket and
the client cost.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .daemon import Client, EmberDaemon
from .engine_report import DAEMON_VARIANT
from .fork_setup import deploy_with_template
from .restore_latency import ember_variants, measure_handler, take_snapshot
from .suite import stat
from .tools import ToolError

DAEMON_CGROUP_NAME = "ember-bench-engine-daemon"


def in_request_api_ms(phases: dict | None) -> float | None:
    """What the API path adds within the same requests: the client's time minus the daemon's
    own Server-Timing total (means); None without both. Less noisy than two medians' difference,
    which come from different boots."""
    mean = (phases or {}).get("mean") or {}
    client, total = mean.get("client"), mean.get("total")
    return None if client is None or total is None else client - total


def measure_daemon_path(ember: str, image: str, root: Path, functions: list[dict], rounds: int,
                        warmups: int, log, verbose: bool, warnings: list[str]) -> dict:
    """{"source": "this run", "kinds": {kind: {mode: p50 ms | None}}, "variants": {kind:
    figures}, "in_request": {kind: {mode: ms | None}}} or {"error"}; the daemon and its cgroup
    pool are gone when it returns."""
    daemon = EmberDaemon(ember, root, DAEMON_CGROUP_NAME, log)
    client: Client | None = None
    out: dict = {"source": "this run", "kinds": {}, "variants": {}, "in_request": {}}
    try:
        daemon.provide_image(image)
        daemon.start()
        client = Client(daemon.socket)
        for fn in functions:
            name = f"daemon-{fn['kind']}"
            deploy_with_template(daemon, client, root, name, fn["module"])
            snapshot, snapshot_error = None, None
            try:
                snapshot = take_snapshot(client, name)
            except (ValueError, OSError) as e:
                snapshot_error = str(e)
            variants = ember_variants(client, name, 1, snapshot, None, snapshot_error)
            log(f"through the daemon, {fn['kind']}: {rounds} rounds × {len(variants)} modes")
            r = measure_handler(variants, rounds, warmups, fn["kind"], verbose)
            out["variants"][fn["kind"]] = r["variants"]
            out["kinds"][fn["kind"]] = {mode: stat(r["variants"].get(v))
                                        for mode, v in DAEMON_VARIANT.items()}
            out["in_request"][fn["kind"]] = {mode: in_request_api_ms(r["phases"].get(v))
                                             for mode, v in DAEMON_VARIANT.items()}
    except (ToolError, OSError, subprocess.SubprocessError, ValueError) as e:
        out = {"error": f"ember daemon: {e}"}
    finally:
        if client is not None:
            client.close()
        warnings += daemon.stop()
    return out
