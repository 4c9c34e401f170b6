"""The daemon side of bench/fork_boot.py: a private `ember daemon` with the flags a burst needs,
the functions it deploys, their templates, and the bulk removal of instances.

Functions are capped at max_instances = 1000 (kMaxMaxInstances in src/engine/manifest_rules.h),
so a density run of more than 1000 instances, or a burst of more than 1000, spreads over
several functions with the same code (each gets its own template).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from .daemon import Client, EmberDaemon
from .scenarios import FUNCTION_HANDLER, MEMORY_FLAG
from .tools import ToolError

MAX_INSTANCES_CAP = 1000
TEMPLATE_TIMEOUT_S = 120.0
DELETE_TIMEOUT_S = 120.0


def write_bundle(root: Path, name: str, module: str) -> Path:
    bundle = root / "bundles" / name
    bundle.mkdir(parents=True, exist_ok=True)
    # keep_alive: idle instances stay until the script deletes them; max_instances: the cap, so
    # a forced boot never stops an idle instance to make room (scheduler.h).
    (bundle / "ember.toml").write_text(
        f'name = "{name}"\nruntime = "python3.11"\nhandler = "{FUNCTION_HANDLER}"\n'
        f'image = "python3.11"\nmemory = "{MEMORY_FLAG}iB"\ntimeout = "30s"\n'
        f'keep_alive = "1h"\nmax_instances = {MAX_INSTANCES_CAP}\ntemplate = "deploy"\n')
    (bundle / "main.py").write_text(module)
    return bundle


def templates(client: Client) -> list[dict]:
    answer = client.request("GET", "/v1/templates")
    if answer.status != 200:
        raise ToolError(f"GET /v1/templates: {answer.error_text()}")
    return answer.json()["templates"]


def wait_template(client: Client, function: str, timeout_s: float = TEMPLATE_TIMEOUT_S) -> dict:
    """The function's template once it is ready; ToolError when it is refused or failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        mine = [t for t in templates(client)
                if t.get("function") == function and t.get("state") != "retiring"]
        if mine and mine[0].get("state") == "ready":
            return mine[0]
        if mine and mine[0].get("state") in ("refused", "failed"):
            raise ToolError(f"template of {function}: {mine[0]['state']}: "
                            f"{mine[0].get('reason', '?')}")
        if time.monotonic() > deadline:
            raise ToolError(f"template of {function} not ready after {timeout_s:.0f}s: "
                            f"{json.dumps(mine)[:300]}")
        time.sleep(0.05)


def deploy_with_template(daemon: EmberDaemon, client: Client, root: Path, name: str,
                         module: str) -> tuple[str, dict]:
    """(deploy line, ready template)."""
    said = daemon.deploy(write_bundle(root, name, module))
    return said, wait_template(client, name)


def delete_instances(client: Client, ids: list[str], timeout_s: float = DELETE_TIMEOUT_S) -> None:
    """DELETE every id, then wait until the daemon lists none of them (their processes are
    reaped), so what follows is not measured beside their teardown."""
    if not ids:
        return
    for instance_id in ids:
        answer = client.request("DELETE", f"/v1/instances/{urllib.parse.quote(instance_id)}")
        if answer.status not in (204, 404):
            raise ToolError(f"DELETE /v1/instances/{instance_id}: {answer.error_text()}")
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    while True:
        left = [i["id"] for i in client.instances() if i["id"] in wanted]
        if not left:
            return
        if time.monotonic() > deadline:
            raise ToolError(f"{len(left)} instances still listed {timeout_s:.0f}s after DELETE "
                            f"(e.g. {left[0]})")
        time.sleep(0.005 if len(left) < 50 else 0.05)


def delete_function_instances(client: Client, functions: list[str],
                              boot_mode: str | None = None) -> int:
    """Deletes the instances of these functions (of one boot mode, if given); how many."""
    ids = [i["id"] for i in client.instances() if i["function"] in functions
           and (boot_mode is None or i.get("boot_mode") == boot_mode)]
    delete_instances(client, ids)
    return len(ids)


def daemon_fds(pid: int) -> tuple[int, int]:
    """(open fds, soft RLIMIT_NOFILE) of a process."""
    n = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    limit = 0
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            limit = int(line.split()[3])
    return n, limit
