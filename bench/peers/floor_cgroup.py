"""A memory+cpu+pids cgroup made once per run for the isolation floors (IsoFloor in tools.py,
`fork_floor.py --isolate`), with the limits ember sets, and removed at the end.

The floors measure what entering a limited cgroup costs a sandbox, not what creating one
costs (ember takes its cgroups from a pre-created pool, off the hot path), so the cgroup is
made before the first timed run and every run's process writes itself into it.

cgroup v1 (this machine): one directory per controller, /sys/fs/cgroup/{memory,cpu,pids}/PATH.
cgroup v2: one directory, with memory, cpu and pids enabled in every parent's subtree_control.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .scenarios import MEMORY_LIMIT

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
# ember's defaults (src/cli/run_cmd.cc, src/sandbox/cgroup/limits.cc): the memory limit the
# benchmark passes (--memory 128M) also on memory+swap, no CPU quota over a 100 ms period,
# 512 pids.
CPU_PERIOD_US = 100000
PIDS_MAX = 512
REMOVE_TIMEOUT_S = 10.0


class FloorCgroupError(Exception):
    pass


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise FloorCgroupError(f"write {value!r} to {path}: {e.strerror}") from e


class FloorCgroup:
    """cgroup PATH (relative to each hierarchy's root) with ember's limits."""

    def __init__(self, path: str, memory: int = MEMORY_LIMIT, pids: int = PIDS_MAX):
        self.path = path.strip("/")
        self.memory, self.pids = memory, pids
        self.v2 = not (CGROUP_ROOT / "memory").is_dir()
        self.made: list[Path] = []

    def dirs(self) -> list[Path]:
        if self.v2:
            return [CGROUP_ROOT / self.path]
        return [CGROUP_ROOT / c / self.path for c in CONTROLLERS]

    def procs_files(self) -> list[str]:
        """The cgroup.procs a process writes "0" (itself) into to enter the cgroup."""
        return [str(d / "cgroup.procs") for d in self.dirs()]

    def create(self) -> None:
        if self.v2:
            self._enable_v2_controllers()
        for d in self.dirs():
            # Parents too (PATH under the run's cgroup parent); each one made is removed.
            missing = [p for p in [d, *d.parents] if not p.exists()
                       and CGROUP_ROOT in p.parents]
            for p in reversed(missing):
                try:
                    p.mkdir()
                except OSError as e:
                    raise FloorCgroupError(f"mkdir {p}: {e.strerror}") from e
                self.made.append(p)
        if self.v2:
            d = self.dirs()[0]
            _write(d / "memory.max", str(self.memory))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "cpu.max", f"max {CPU_PERIOD_US}")
            _write(d / "pids.max", str(self.pids))
            return
        mem, cpu, pids = self.dirs()
        _write(mem / "memory.limit_in_bytes", str(self.memory))
        if (mem / "memory.memsw.limit_in_bytes").exists():
            _write(mem / "memory.memsw.limit_in_bytes", str(self.memory))
        _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", "-1")
        _write(pids / "pids.max", str(self.pids))

    def _enable_v2_controllers(self) -> None:
        parts = Path(self.path).parts
        for depth in range(len(parts)):
            parent = CGROUP_ROOT.joinpath(*parts[:depth])
            if parent.exists():
                ctl = parent / "cgroup.subtree_control"
                have = ctl.read_text().split()
                want = [c for c in CONTROLLERS if c not in have]
                if want:
                    _write(ctl, " ".join(f"+{c}" for c in want))
            else:
                parent.mkdir()
                self.made.append(parent)
                _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))

    def remove(self) -> str | None:
        """rmdir what create() made, deepest first; a warning when the cgroup itself is left.

        The cgroup's own directories wait for exiting processes to leave; a parent made here
        is tried once (another user of the run's cgroup parent may still have children in it,
        and the run's cleanup removes the parent at the end)."""
        left = []
        own = set(self.dirs())
        for d in sorted(self.made, key=lambda p: -len(p.parts)):
            deadline = time.monotonic() + (REMOVE_TIMEOUT_S if d in own else 0.0)
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if time.monotonic() >= deadline:
                        if d in own:
                            left.append(f"{d} ({e.strerror})")
                        break
                    time.sleep(0.05)
        self.made = []
        return f"cgroups left behind: {', '.join(left)}" if left else None


def floor_cgroup_path(parent: str, name: str) -> str:
    """PATH of a floor's cgroup: under the run's cgroup parent, unique per process."""
    return f"{parent.strip('/')}/{name}-{os.getpid()}"
