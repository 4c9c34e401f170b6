"""Density (bench/fork_boot.py, part 2): many idle instances at once, and what each costs.

An instance is started by one forced invocation (`?boot=fork`, or `?boot=plain` for the
comparison) and then sits idle (keep_alive 1 h). Its cost is measured two ways:

  * PSS: the sum of `Pss` in /proc/<pid>/smaps_rollup over the instance's process and its
    descendants (pids from GET /v1/instances; an instance is pid 1 of its own namespace), so
    pages shared with the template and the other instances count by their share;
  * the drop of MemAvailable (/proc/meminfo) from before the first instance to after the last,
    divided by the instances started: everything the host pays, kernel objects included
    (namespaces, cgroups, page tables, sockets, the daemon's bookkeeping).

Limits met on the way are reported, not hidden: the daemon's open fds against its
RLIMIT_NOFILE, kernel.pid_max (raised for the run when needed, restored after), MemAvailable.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from .daemon import Client, parse_server_timing
from .fork_setup import daemon_fds, delete_instances, templates
from .scenarios import EVENT
from .stats import median, percentile

PID_MAX = Path("/proc/sys/kernel/pid_max")
FD_MARGIN = 400  # stop starting instances when the daemon is this close to its fd limit
CHECK_EVERY = 25  # instances between two looks at the daemon's fds and MemAvailable
MIN_AVAILABLE_FRACTION = 0.15  # ... or when MemAvailable falls below this share of MemTotal
SETTLE_S = 1.0
CLEANUP_SETTLE_MAX_S = 30.0  # the kernel frees namespaces and cgroups asynchronously
# What the drop of MemAvailable is made of (kB fields of /proc/meminfo).
MEMINFO_PARTS = ["AnonPages", "Shmem", "Cached", "PageTables", "KernelStack", "Slab",
                 "SUnreclaim", "Percpu"]


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])  # kB
    return out


def slab_kib() -> dict[str, float]:
    """KiB held per slab cache (num_slabs × pages per slab), from /proc/slabinfo."""
    out = {}
    try:
        lines = Path("/proc/slabinfo").read_text().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) >= 15:
            out[f[0]] = int(f[14]) * int(f[5]) * os.sysconf("SC_PAGE_SIZE") / 1024
    return out


def slab_growth(before: dict[str, float], after: dict[str, float], n: int,
                top: int = 8) -> dict[str, float]:
    """The slab caches that grew most, KiB per instance."""
    growth = {k: (v - before.get(k, 0.0)) / n for k, v in after.items()}
    return dict(sorted(((k, round(v, 1)) for k, v in growth.items() if v > 0),
                       key=lambda kv: -kv[1])[:top])


def cgroup_dirs(name: str) -> int:
    """Cgroups under the daemon's pool (its memory hierarchy on v1, the unified one on v2)."""
    for top in (Path("/sys/fs/cgroup/memory") / name, Path("/sys/fs/cgroup") / name):
        if top.is_dir():
            return sum(len(dirs) for _, dirs, _ in os.walk(top))
    return 0


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup of one process, kB per field ({} when it is gone)."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def tree_memory(pid: int) -> dict:
    """PSS and friends (kB) of a process and its descendants, with their count and threads."""
    pids = [pid] + descendants(pid)
    total = {"Pss": 0, "Rss": 0, "Private": 0, "Pss_Anon": 0, "Pss_File": 0, "processes": 0,
             "threads": 0}
    for p in pids:
        r = rollup(p)
        if not r:
            continue
        total["processes"] += 1
        for key in ("Pss", "Rss", "Pss_Anon", "Pss_File"):
            total[key] += r.get(key, 0)
        total["Private"] += r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
        try:
            total["threads"] += len(os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    return total


def distribution(values: list[float]) -> dict:
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {"n": len(s), "mean": sum(s) / len(s), "median": median(s), "min": s[0],
            "p99": percentile(s, 99), "max": s[-1]}


class PidMax:
    """Raises kernel.pid_max for the run when the instances would not fit, restores it after."""

    def __init__(self, log):
        self.log = log
        self.saved: int | None = None

    def ensure(self, needed: int) -> dict:
        current = int(PID_MAX.read_text())
        if needed <= current:
            return {"pid_max": current, "raised": False}
        new = min(4194304, max(needed, 2 * current))
        self.log(f"raising kernel.pid_max {current} → {new} for the run ({needed} pids needed)")
        PID_MAX.write_text(f"{new}\n")
        self.saved = current
        return {"pid_max": new, "raised": True, "was": current}

    def restore(self) -> str | None:
        if self.saved is None:
            return None
        try:
            PID_MAX.write_text(f"{self.saved}\n")
        except OSError as e:
            return f"could not restore kernel.pid_max to {self.saved}: {e}"
        self.log(f"kernel.pid_max restored to {self.saved}")
        self.saved = None
        return None


def live_pids() -> int:
    return sum(len(os.listdir(f"/proc/{p}/task")) for p in os.listdir("/proc")
               if p.isdigit() and os.path.isdir(f"/proc/{p}/task"))


def start_instances(socket_path: str, functions: list[str], n: int, mode: str, workers: int,
                    daemon_pid: int, log, verbose: bool) -> dict:
    """Starts up to n idle instances (round robin over `functions`) with `workers` concurrent
    connections; stops early, saying why, on the first failed invocation or when the daemon
    nears its fd limit or the host its memory. Returns started ids, stop reason, wall time."""
    lock = threading.Lock()
    state = {"next": 0, "ids": [], "stop": None, "ms": [], "sandbox": [], "init": []}
    total_kb = meminfo()["MemTotal"]

    def limits_reached(started: int) -> str | None:
        fds, limit = daemon_fds(daemon_pid)
        if limit and fds > limit - FD_MARGIN:
            return (f"the daemon has {fds} fds open (RLIMIT_NOFILE {limit}) after {started} "
                    f"instances; stopped before it runs out")
        avail = meminfo()["MemAvailable"]
        if avail < total_kb * MIN_AVAILABLE_FRACTION:
            return (f"MemAvailable fell to {avail // 1024} MiB after {started} instances; stopped")
        return None

    def worker() -> None:
        client = Client(socket_path)
        try:
            while True:
                with lock:
                    if state["stop"] or state["next"] >= n:
                        return
                    i = state["next"]
                    state["next"] += 1
                function = functions[i % len(functions)]
                try:
                    answer = client.invoke(function, EVENT.encode(), boot=mode)
                except OSError as e:
                    with lock:
                        state["stop"] = state["stop"] or f"instance {i + 1}: {e}"
                    return
                got_mode = answer.headers.get("x-ember-boot-mode", "")
                with lock:
                    if answer.status != 200 or got_mode != mode:
                        state["stop"] = state["stop"] or (
                            f"instance {i + 1} ({function}): {answer.error_text()} "
                            f"(boot mode {got_mode or '?'})")
                        return
                    state["ids"].append(answer.headers.get("x-ember-instance", ""))
                    st = parse_server_timing(answer.headers.get("server-timing", ""))
                    state["ms"].append(answer.ms)
                    state["sandbox"].append(st.get("sandbox", 0.0))
                    state["init"].append(st.get("init", 0.0))
                    started = len(state["ids"])
                if started % CHECK_EVERY == 0:
                    why = limits_reached(started)
                    with lock:
                        state["stop"] = state["stop"] or why
                    if verbose and started % 100 == 0:
                        print(f"  density {mode}: {started}/{n}", end="\r", flush=True,
                              file=sys.stderr)
        finally:
            client.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if verbose:
        print(file=sys.stderr)
    if state["stop"]:
        log(f"density {mode}: stopped after {len(state['ids'])} of {n}: {state['stop']}")
    return {"ids": state["ids"], "stopped": state["stop"], "wall_s": wall,
            "by_step": by_step(state["ms"], state["sandbox"], state["init"], n)}


def by_step(ms: list[float], sandbox: list[float], init: list[float], n: int) -> list[dict]:
    """Medians of the invoke time (client) and of the Server-Timing sandbox and init phases of
    the instances started while 0..step, step..2*step, ... others were alive: does a start get
    slower as instances pile up, and in which phase?"""
    step = max(100, n // 10)
    out = []
    for lo in range(0, len(ms), step):
        hi = lo + len(ms[lo:lo + step])
        out.append({"from": lo, "to": hi, "invoke_ms": median(ms[lo:hi]),
                    "sandbox_ms": median(sandbox[lo:hi]), "init_ms": median(init[lo:hi])})
    return out


def measure_instances(client: Client, functions: list[str], mode: str, requested: int,
                      workers: int, daemon_pid: int, cgroup_name: str, log,
                      verbose: bool) -> dict:
    """Starts the instances, measures them, deletes them. The result's figures are per instance."""
    time.sleep(SETTLE_S)
    before, slabs_before = meminfo(), slab_kib()
    fds_before, fd_limit = daemon_fds(daemon_pid)
    cgroups_before = cgroup_dirs(cgroup_name)
    started = start_instances(client.socket_path, functions, requested, mode, workers,
                              daemon_pid, log, verbose)
    ids = started["ids"]
    result: dict = {"mode": mode, "requested": requested, "started": len(ids),
                    "stopped": started["stopped"], "start_wall_s": round(started["wall_s"], 2),
                    "functions": len(functions), "by_step": started["by_step"]}
    try:
        time.sleep(SETTLE_S)
        after, slabs_after = meminfo(), slab_kib()
        fds_after, _ = daemon_fds(daemon_pid)
        cgroups_after = cgroup_dirs(cgroup_name)
        wanted = set(ids)
        listed = [i for i in client.instances() if i["id"] in wanted]
        trees = [tree_memory(i["pid"]) for i in listed if i.get("pid")]
        n = max(1, len(ids))
        result.update({
            "listed": len(listed),
            "pss_kib": distribution([t["Pss"] for t in trees]),
            "pss_anon_kib": distribution([t["Pss_Anon"] for t in trees]),
            "pss_file_kib": distribution([t["Pss_File"] for t in trees]),
            "rss_kib": distribution([t["Rss"] for t in trees]),
            "private_kib": distribution([t["Private"] for t in trees]),
            "processes_per_instance": distribution([t["processes"] for t in trees]),
            "threads_per_instance": distribution([t["threads"] for t in trees]),
            "memavailable_drop_kib_per_instance":
                (before["MemAvailable"] - after["MemAvailable"]) / n,
            "meminfo_delta_kib_per_instance": {
                k: (after.get(k, 0) - before.get(k, 0)) / n for k in MEMINFO_PARTS},
            "pool_cgroups": {"before": cgroups_before, "after": cgroups_after},
            "slab_growth_kib_per_instance": slab_growth(slabs_before, slabs_after, n),
            "memavailable_before_mib": before["MemAvailable"] // 1024,
            "memavailable_after_mib": after["MemAvailable"] // 1024,
            "daemon_fds": {"before": fds_before, "after": fds_after, "limit": fd_limit,
                           "per_instance": (fds_after - fds_before) / n},
        })
        if mode == "fork":
            mine = [t for t in templates(client) if t.get("function") in functions
                    and t.get("pid")]
            result["templates"] = [dict(tree_memory_alone(t["pid"]), function=t["function"],
                                        children=t.get("children")) for t in mine]
    finally:
        t0 = time.monotonic()
        delete_instances(client, ids, timeout_s=max(120.0, len(ids) * 0.05))
        result["delete_wall_s"] = round(time.monotonic() - t0, 2)
        result["memavailable_after_cleanup_mib"] = settled_available() // 1024
        result["daemon_fds_after_cleanup"] = daemon_fds(daemon_pid)[0]
        result["pool_cgroups"]["after_cleanup"] = cgroup_dirs(cgroup_name)
    return result


def settled_available() -> int:
    """MemAvailable (kB) once it has stopped rising by more than 8 MiB a second, or after
    CLEANUP_SETTLE_MAX_S."""
    deadline = time.monotonic() + CLEANUP_SETTLE_MAX_S
    last = meminfo()["MemAvailable"]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = meminfo()["MemAvailable"]
        if now - last < 8 * 1024:
            return now
        last = now
    return last


def tree_memory_alone(pid: int) -> dict:
    r = rollup(pid)
    return {"pid": pid, "Pss": r.get("Pss", 0), "Rss": r.get("Rss", 0),
            "Private": r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)}
