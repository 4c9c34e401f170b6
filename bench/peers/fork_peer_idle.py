"""The density reference (bench/fork_boot.py, part 2): idle crun containers of the light handler.

Each container runs the light handler's code once (python3.11 -c, as the peers' cold starts do)
and then sleeps, started with `crun run --detach` on the same read-only image and OCI bundle as
the latency comparison. Its idle cost is measured as for ember's instances: PSS of the
container's process tree and the drop of MemAvailable per container. When crun cannot run here,
host-facts' figure is quoted instead, marked as such.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time

from .fork_density import SETTLE_S, distribution, meminfo, tree_memory
from .scenarios import LIGHT_CODE, PYTHON_IN_IMAGE
from .tools import Crun, ToolError, run_checked

# docs: /work/shared/notes/host-facts.md ("Idle python sandbox memory"), measured 2026-11-21.
HOST_FACTS_CRUN_PSS_MIB = 2.75
IDLE_CODE = LIGHT_CODE + "import time\ntime.sleep(10 ** 6)\n"
READY_TIMEOUT_S = 30.0


def _crun(crun: Crun, *args: str) -> subprocess.CompletedProcess:
    crun.before()  # crun 1.8 on a hybrid host: its private mount namespace (tools.Crun)
    try:
        return run_checked([crun.binary, "--root", str(crun.state_root), *args])
    finally:
        crun.after()


def _container_pid(crun: Crun, container: str) -> int:
    out = _crun(crun, "state", container)
    if out.returncode != 0:
        raise ToolError(f"crun state {container}: {out.stderr.strip()[-300:]}")
    return int(json.loads(out.stdout)["pid"])


def crun_idle(crun: Crun, count: int, ids, log) -> dict:
    """Starts `count` idle containers, measures them, deletes them."""
    if crun.error:
        return quoted(f"crun cannot run here: {crun.error}")
    cmd = [PYTHON_IN_IMAGE, "-c", IDLE_CODE]
    started: list[str] = []
    time.sleep(SETTLE_S)
    before = meminfo()
    try:
        for _ in range(count):
            run_id = next(ids)
            crun.prepare_run(cmd, run_id)
            argv = crun.argv(cmd, run_id)
            argv.insert(argv.index("run") + 1, "--detach")
            # The container keeps crun's stdio: files, not pipes, or run() waits for its EOF.
            with tempfile.TemporaryFile() as err:
                crun.before()
                try:
                    proc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err, timeout=60)
                finally:
                    crun.after()
                err.seek(0)
                why = err.read().decode(errors="replace").strip()
            started.append(run_id)
            if proc.returncode != 0:
                raise ToolError(f"crun run --detach: exit status {proc.returncode}: {why[-300:]}")
        pids = [_container_pid(crun, crun.container_id(r)) for r in started]
        # Ready = the handler ran: python has imported json and is asleep (its RSS has settled).
        deadline = time.monotonic() + READY_TIMEOUT_S
        trees = [tree_memory(p) for p in pids]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            again = [tree_memory(p) for p in pids]
            if all(abs(a["Rss"] - b["Rss"]) < 64 for a, b in zip(again, trees)):
                trees = again
                break
            trees = again
        time.sleep(SETTLE_S)
        after = meminfo()
        return {
            "measured": True, "containers": len(started),
            "pss_kib": distribution([t["Pss"] for t in trees]),
            "rss_kib": distribution([t["Rss"] for t in trees]),
            "private_kib": distribution([t["Private"] for t in trees]),
            "memavailable_drop_kib_per_instance":
                (before["MemAvailable"] - after["MemAvailable"]) / max(1, len(started)),
        }
    except (ToolError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        log(f"crun idle containers: {e}")
        return quoted(str(e))
    finally:
        for run_id in started:
            try:
                crun.cleanup_run(run_id)
            except Exception as e:  # noqa: BLE001 - the others must still be deleted
                log(f"warning: crun delete {run_id}: {e}")


def quoted(why: str) -> dict:
    return {"measured": False, "error": why, "quoted_pss_mib": HOST_FACTS_CRUN_PSS_MIB,
            "source": "host-facts (2026-11-21): idle python sandbox, crun"}
