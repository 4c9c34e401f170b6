"""The machine the benchmark runs on: its cgroup layout, a mount namespace crun can live with,
the description that goes into the report, and the cgroups the runtimes leave behind.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tools imports this module; the annotation only needs the name
    from .tools import Tool

# Mount namespace helpers (crun 1.8 on a hybrid cgroup host).

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class MountNamespace:
    """A private mount namespace this (single-threaded) process can step into and out of.

    crun 1.8 refuses to run when it sees the cgroup2 mount of a hybrid host at
    /sys/fs/cgroup/unified ("cgroups in hybrid mode not supported"). Wrapping every crun call
    in `unshare -m sh -c 'umount ...; exec crun'` would add two execs to crun's time, so the
    script makes the namespace once and setns()es into it around each crun spawn (outside the
    timed region: setns costs microseconds and is done before the clock starts).
    """

    def __init__(self, unmount: list[str]):
        self.host_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        cwd = os.getcwd()
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
                   "make / rprivate")
            for path in unmount:
                if os.path.ismount(path):
                    _check(_libc.umount2(path.encode(), MNT_DETACH), f"umount {path}")
            self.ns_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            _check(_libc.setns(self.host_fd, CLONE_NEWNS), "setns back to the host mount ns")
            os.chdir(cwd)

    def enter(self) -> None:
        cwd = os.getcwd()
        _check(_libc.setns(self.ns_fd, CLONE_NEWNS), "setns into the private mount ns")
        os.chdir(cwd)

    def leave(self) -> None:
        cwd = os.getcwd()
        _check(_libc.setns(self.host_fd, CLONE_NEWNS), "setns back to the host mount ns")
        os.chdir(cwd)


def cgroup_layout() -> str:
    try:
        fs_root = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True,
                                 text=True).stdout.strip()
    except OSError:
        return "unknown"
    if fs_root == "cgroup2fs":
        return "v2 (unified)"
    v1 = sorted(p.name for p in Path("/sys/fs/cgroup").iterdir()
                if p.is_dir() and p.name not in ("unified", "systemd"))
    unified = Path("/sys/fs/cgroup/unified")
    if os.path.ismount(unified):
        ctrls = (unified / "cgroup.controllers").read_text().split() if (
            unified / "cgroup.controllers").exists() else []
        return (f"hybrid: v1 {','.join(v1)}; cgroup2 at /sys/fs/cgroup/unified "
                f"(controllers: {','.join(ctrls) or 'none'})")
    return f"v1: {','.join(v1)}"


def machine_info(tools: list[Tool]) -> dict:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    os_name = "?"
    try:
        m = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
        os_name = m.group(1) if m else "?"
    except OSError:
        pass
    return {
        "os": os_name,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cgroups": cgroup_layout(),
        "loadavg_at_start": os.getloadavg()[0],
        "versions": {t.name: t.version for t in tools if t.version},
    }


def remove_cgroups(parent: str) -> None:
    """rmdir <hierarchy>/<parent> and what the runtimes left under it (empty dirs only)."""
    base = Path("/sys/fs/cgroup")
    roots = [base] if not (base / "memory").exists() else [
        p for p in base.iterdir() if p.is_dir() and not p.is_symlink()]
    for root in roots:
        top = root / parent.lstrip("/")
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass
        try:
            top.parent.rmdir()  # /ember-bench, if no other run uses it
        except OSError:
            pass
