#!/usr/bin/env python3
"""Start -> exit of `ember run` against crun, runc, gVisor runsc and an unshare+chroot baseline.

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
import ctypes
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- run-vs-peers:begin -->"
END_MARK = "<!-- run-vs-peers:end -->"

PYTHON_IN_IMAGE = "/usr/bin/python3.11"  # the image has python3.11 only, no python3 symlink
MEMORY_LIMIT = 128 * 1024 * 1024
MEMORY_FLAG = "128M"
PER_RUN_TIMEOUT_S = 60.0
WARMUPS = 3

# A handler the way a function platform calls one: parse the event, compute, answer in JSON.
HANDLER = (
    "def handler(event):\n"
    "    items = event['items']\n"
    "    return {'ok': True, 'count': len(items), 'total': sum(i['price'] * i['qty'] for i in items)}\n"
)
EVENT = '{"items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}]}'
EXPECTED_ANSWER = '{"ok": true, "count": 2, "total": 11}'
LIGHT_CODE = f"import json\n{HANDLER}print(json.dumps(handler(json.loads({EVENT!r}))))\n"
# Stdlib imports a real handler pulls in; ≈50 ms of imports for python3.11 on an idle machine
# of this kind. All of them are in Debian's minbase + python3.11 (libpython3.11-stdlib).
HEAVY_IMPORTS = (
    "json, decimal, email.parser, http.client, xml.etree.ElementTree, asyncio, argparse, "
    "logging, urllib.request, sqlite3"
)
HEAVY_CODE = f"import {HEAVY_IMPORTS}\n{HANDLER}print(json.dumps(handler(json.loads({EVENT!r}))))\n"

SCENARIOS = [
    {"name": "true", "title": "/bin/true", "argv": ["/bin/true"], "expect": None, "python": False},
    {"name": "python-light", "title": "light Python handler",
     "argv": [PYTHON_IN_IMAGE, "-c", LIGHT_CODE], "expect": EXPECTED_ANSWER, "python": True},
    {"name": "python-heavy", "title": "heavy Python handler (stdlib imports)",
     "argv": [PYTHON_IN_IMAGE, "-c", HEAVY_CODE], "expect": EXPECTED_ANSWER, "python": True},
]


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Tools


class ToolError(Exception):
    pass


def run_checked(argv: list[str], timeout: float = 60.0, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


class Tool:
    name = "?"
    python_only = False

    def __init__(self):
        self.error: str | None = None
        self.version = ""

    def setup(self) -> None:
        """Raises ToolError when the tool cannot run here."""

    def argv(self, cmd: list[str], run_id: str) -> list[str]:
        raise NotImplementedError

    def before(self) -> None:
        pass

    def after(self) -> None:
        pass

    def cleanup_run(self, run_id: str) -> None:
        pass

    def teardown(self) -> None:
        pass


class Ember(Tool):
    name = "ember"

    def __init__(self, binary: str, image: str):
        super().__init__()
        self.binary = binary
        self.image = image

    def setup(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise ToolError(f"{self.binary}: not an executable")
        helped = run_checked([self.binary, "run", "--help"])
        if helped.returncode != 0 or "--image" not in helped.stdout + helped.stderr:
            raise ToolError("`ember run` is not available in this build: "
                            + (helped.stderr.strip() or helped.stdout.strip())[:300])
        self.version = run_checked([self.binary, "--version"]).stdout.strip()

    def argv(self, cmd, run_id):
        return [self.binary, "run", "--image", self.image, "--memory", MEMORY_FLAG, "--", *cmd]

    def hold_image(self) -> None:
        """Keeps one idle sandbox alive so the image stays mounted between runs.

        `ember run` mounts the image (EROFS + id-mapped view) when no other sandbox uses it
        and unmounts it when the last one ends, so back-to-back CLI runs each pay the mount and
        a cold EROFS page cache. With --ember-hold-image the benchmark measures the case of a
        busy host (or a daemon) where the image is already mounted, as the peers' is.
        """
        self.holder = subprocess.Popen(
            # pid 1 of a pid namespace drops signals it has no handler for, so a bare `sleep`
            # would ignore the SIGTERM ember forwards; sh with a trap exits on it.
            [self.binary, "run", "--image", self.image, "--", "/bin/sh", "-c",
             "trap 'exit 0' TERM; sleep 1000000 & wait"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        time.sleep(0.5)
        if self.holder.poll() is not None:
            raise ToolError("the image-holding sandbox exited: "
                            + self.holder.stderr.read().decode(errors="replace").strip())

    def teardown(self):
        holder = getattr(self, "holder", None)
        if holder and holder.poll() is None:
            holder.terminate()  # ember forwards it to the sandbox
            try:
                holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(holder.pid, signal.SIGKILL)
                holder.wait()


class Baseline(Tool):
    """The cheapest sandbox-ish thing: new mount/pid/net/ipc/uts namespaces and a chroot."""
    name = "unshare+chroot"

    def __init__(self, rootfs: str):
        super().__init__()
        self.rootfs = rootfs

    def setup(self):
        self.version = run_checked(["unshare", "--version"]).stdout.strip()

    def argv(self, cmd, run_id):
        return ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork",
                "chroot", self.rootfs, *cmd]


class HostPython(Tool):
    """python3.11 on the host with no sandbox at all: the floor for the python scenarios."""
    name = "python3 (host)"
    python_only = True

    def setup(self):
        self.python = shutil.which("python3.11", path="/usr/bin:/bin") or shutil.which("python3")
        if not self.python:
            raise ToolError("no python3 on the host")
        self.version = run_checked([self.python, "--version"]).stdout.strip()

    def argv(self, cmd, run_id):
        return [self.python, *cmd[1:]]


def oci_config(rootfs: str, cgroup_parent: str, hostname: str = "bench") -> dict:
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME=/root", "LANG=C.UTF-8"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]},
        ],
        "linux": {
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": MEMORY_LIMIT},
            },
            "cgroupsPath": cgroup_parent,  # completed per run
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


class OciRuntime(Tool):
    """crun / runc / runsc: one bundle per scenario (config.json differs only in args)."""

    binary = "?"
    global_flags: list[str] = []

    def __init__(self, rootfs: str, workdir: Path, cgroup_parent: str):
        super().__init__()
        self.rootfs = rootfs
        self.workdir = workdir / self.name
        self.state_root = self.workdir / "state"
        self.cgroup_parent = cgroup_parent
        self.bundles: dict[tuple, Path] = {}

    def setup(self):
        path = shutil.which(self.binary)
        if not path:
            raise ToolError(f"{self.binary} is not installed")
        self.binary = path
        out = run_checked([path, "--version"])
        self.version = (out.stdout.strip().splitlines() or ["?"])[0]
        self.state_root.mkdir(parents=True, exist_ok=True)

    def bundle_for(self, cmd: list[str]) -> Path:
        key = tuple(cmd)
        if key not in self.bundles:
            bundle = self.workdir / f"bundle-{len(self.bundles)}"
            bundle.mkdir(parents=True, exist_ok=True)
            cfg = oci_config(self.rootfs, self.cgroup_parent)
            cfg["process"]["args"] = list(cmd)
            self.adjust(cfg)
            (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
            self.bundles[key] = bundle
        return self.bundles[key]

    def adjust(self, cfg: dict) -> None:
        pass

    def container_id(self, run_id: str) -> str:
        return f"{self.name}-{run_id}"

    def argv(self, cmd, run_id):
        bundle = self.bundle_for(cmd)
        return [self.binary, "--root", str(self.state_root), *self.global_flags, "run",
                "--bundle", str(bundle), self.container_id(run_id)]

    def cgroups_path(self, run_id: str) -> str:
        return f"{self.cgroup_parent}/{self.container_id(run_id)}"

    def prepare_run(self, cmd, run_id):
        # cgroupsPath must be unique per container; rewrite it in place (untimed).
        bundle = self.bundle_for(cmd)
        cfg_path = bundle / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["linux"]["cgroupsPath"] = self.cgroups_path(run_id)
        cfg_path.write_text(json.dumps(cfg, indent=1))

    def leftovers(self) -> list[str]:
        if not self.state_root.exists():
            return []
        return [p.name for p in self.state_root.iterdir() if not p.name.startswith(".")]

    def cleanup_run(self, run_id):
        cid = self.container_id(run_id)
        if any(cid in name for name in self.leftovers()):
            self.before()
            try:
                run_checked([self.binary, "--root", str(self.state_root), *self.global_flags,
                             "delete", "--force", cid])
            finally:
                self.after()

    def teardown(self):
        for name in self.leftovers():
            m = re.search(rf"{re.escape(self.name)}-[0-9a-z-]+", name)
            if m:
                self.cleanup_run(m.group(0)[len(self.name) + 1:])


class Crun(OciRuntime):
    name = "crun"
    binary = "crun"

    def __init__(self, *a, mountns: MountNamespace | None = None, **kw):
        super().__init__(*a, **kw)
        self.mountns = mountns

    def setup(self):
        super().setup()
        if self.mountns is None and "hybrid" in cgroup_layout():
            try:
                self.mountns = MountNamespace(["/sys/fs/cgroup/unified"])
            except OSError as e:
                raise ToolError(f"cannot make the private mount namespace crun needs: {e}")

    def before(self):
        if self.mountns:
            self.mountns.enter()

    def after(self):
        if self.mountns:
            self.mountns.leave()


class Runc(OciRuntime):
    name = "runc"
    binary = "runc"


class Runsc(OciRuntime):
    name = "runsc"
    binary = "runsc"
    # ptrace: this VM's /dev/kvm is paravirtual and gVisor's KVM platform does not work on it.
    # --network=none: the netstack needs no veth; the spec's network namespace stays empty.
    global_flags = ["--platform=ptrace", "--network=none"]

    def setup(self):
        super().setup()
        self.version = self.version.replace("runsc version ", "runsc ")

    def leftovers(self):
        # runsc keeps <id>_sandbox:<id>.state and .lock files; hidden ones are not containers.
        return [n for n in super().leftovers() if n.endswith(".state") or n.endswith(".json")
                or (self.state_root / n).is_dir()]


# ---------------------------------------------------------------------------------------------
# Measurement


def spawn_and_time(tool: Tool, argv: list[str]) -> tuple[float, int, str, str]:
    tool.before()
    try:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    finally:
        tool.after()
    try:
        out, err = proc.communicate(timeout=PER_RUN_TIMEOUT_S)
        t1 = time.perf_counter_ns()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's session, nothing else
        out, err = proc.communicate()
        return float("nan"), -1, out.decode(errors="replace"), "timed out after " \
            f"{PER_RUN_TIMEOUT_S:.0f}s; " + err.decode(errors="replace")
    except BaseException:  # SIGTERM/Ctrl-C mid-run: take the child down with us
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return (t1 - t0) / 1e6, proc.returncode, out.decode(errors="replace"), \
        err.decode(errors="replace")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


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
        run_id = self.next_id()
        cmd = scenario["argv"]
        if isinstance(tool, OciRuntime):
            tool.prepare_run(cmd, run_id)
        argv = tool.argv(cmd, run_id)
        try:
            ms, rc, out, err = spawn_and_time(tool, argv)
        finally:
            try:
                tool.cleanup_run(run_id)
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the measurement
                print(f"warning: {tool.name}: cleanup of {run_id} failed: {e}", file=sys.stderr)
        problem = None
        if rc != 0:
            problem = f"exit status {rc}: {(err.strip() or out.strip())[-600:]}"
        elif scenario["expect"] is not None and scenario["expect"] not in out:
            problem = (f"unexpected output {out.strip()[-200:]!r} "
                       f"(stderr {err.strip()[-300:]!r})")
        return ms, problem

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
            s = sorted(samples[t.name])
            result[t.name] = {"n": len(s), "min_ms": s[0], "median_ms": median(s),
                              "p99_ms": percentile(s, 99), "samples_ms": samples[t.name]}
        return result


# ---------------------------------------------------------------------------------------------
# Report


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


def fmt_ms(v: float) -> str:
    if v != v:  # nan
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['timestamp']} ({results['mode']}: {results['warmups']} warm-ups, "
        f"{results['iterations']} interleaved rounds). Machine: {m['os']}, kernel {m['kernel']}, "
        f"{m['cpus']} × {m['cpu_model']}, {m['memory_gib']} GiB, cgroups {m['cgroups']}; "
        f"load average {m['loadavg_at_start']:.2f} at start, "
        f"{m.get('loadavg_at_end', float('nan')):.2f} at end.",
        "",
    ]
    if results.get("ember_image_held"):
        lines += ["ember ran with its image held mounted by an idle sandbox (--ember-hold-image).",
                  ""]
    versions = "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items())
    if versions:
        lines += [f"Versions: {versions}.", ""]
    # Summary: median (median / ember's median) per tool and scenario.
    present = [sc for sc in SCENARIOS if sc["name"] in results["scenarios"]]
    names: list[str] = []
    for sc in present:
        names += [n for n in results["scenarios"][sc["name"]] if n not in names]
    if present and names:
        lines.append("Median start → exit in ms (median / ember's median):")
        lines.append("")
        lines.append("| tool | " + " | ".join(sc["title"] for sc in present) + " |")
        lines.append("| --- |" + " ---: |" * len(present))
        for name in names:
            cells = []
            for sc in present:
                per_tool = results["scenarios"][sc["name"]]
                r = per_tool.get(name)
                ember = per_tool.get("ember", {}).get("median_ms")
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("failed")
                elif ember and name != "ember":
                    cells.append(f"{fmt_ms(r['median_ms'])} ({r['median_ms'] / ember:.2f}×)")
                else:
                    cells.append(fmt_ms(r["median_ms"]))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for sc in SCENARIOS:
        per_tool = results["scenarios"].get(sc["name"])
        if per_tool is None:
            continue
        lines.append(f"**{sc['title']}** — start → exit, ms")
        lines.append("")
        lines.append("| tool | n | min | median | p99 | median / ember |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        ember = per_tool.get("ember", {}).get("median_ms")
        for name, r in per_tool.items():
            if "error" in r:
                why = ("could not run (see below)" if name in results.get("tool_errors", {})
                       else _one_line(r["error"]))
                lines.append(f"| {name} | {r['n']} | – | – | – | failed: {why} |")
                continue
            if name == "ember":
                ratio = "1.00×"
            elif ember:
                ratio = f"{r['median_ms'] / ember:.2f}×"
            else:
                ratio = "–"
            lines.append(f"| {name} | {r['n']} | {fmt_ms(r['min_ms'])} | "
                         f"{fmt_ms(r['median_ms'])} | {fmt_ms(r['p99_ms'])} | {ratio} |")
        lines.append("")
    if results.get("tool_errors"):
        lines.append("Tools that could not run:")
        lines.append("")
        for name, err in results["tool_errors"].items():
            lines.append(f"* {name}: {_one_line(err)}")
        lines.append("")
    lines.append(f"Target: {results['target']['text']}")
    return "\n".join(lines) + "\n"


def _one_line(s: str, limit: int = 300) -> str:
    s = " ".join(s.split()).replace("|", "\\|")
    return s if len(s) <= limit else s[:limit] + "…"


def check_target(results: dict) -> dict:
    light = results["scenarios"].get("python-light", {})
    ember = light.get("ember", {})
    base = light.get("unshare+chroot", {})
    crun = light.get("crun", {})
    if "median_ms" not in ember:
        why = ember.get("error", "ember was not measured")
        return {"met": None, "text": f"not checked: ember light Python has no figure ({_one_line(why, 200)})."}
    parts, met = [], True
    e = ember["median_ms"]
    if "median_ms" in base:
        ok = e <= base["median_ms"] + 1.0
        met &= ok
        parts.append(f"ember {e:.1f} ms ≤ unshare+chroot {base['median_ms']:.1f} + 1 ms: "
                     f"{'yes' if ok else 'NO'}")
    else:
        met = False
        parts.append("unshare+chroot baseline missing")
    if "median_ms" in crun:
        ok = e < crun["median_ms"]
        met &= ok
        parts.append(f"ember < crun {crun['median_ms']:.1f} ms: {'yes' if ok else 'NO'}")
    else:
        met = False
        parts.append("crun missing")
    return {"met": met, "text": f"light Python — {'; '.join(parts)} → "
            f"{'MET' if met else 'NOT MET'}."}


def write_docs(table: str, path: Path) -> None:
    text = path.read_text()
    b, e = text.find(BEGIN_MARK), text.find(END_MARK)
    if b < 0 or e < b:
        raise SystemExit(f"{path}: markers {BEGIN_MARK} / {END_MARK} not found")
    new = text[: b + len(BEGIN_MARK)] + "\n" + table + text[e:]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------


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
    ap.add_argument("--tools", help="comma-separated subset, e.g. ember,crun")
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

    tools: list[Tool] = [
        Ember(os.path.realpath(args.ember) if os.path.exists(args.ember) else args.ember,
              args.image),
        Baseline(rootfs),
        Crun(rootfs, workdir, cgroup_parent),
        Runc(rootfs, workdir, cgroup_parent),
        Runsc(rootfs, workdir, cgroup_parent),
        HostPython(),
    ]
    if args.tools:
        wanted = set(args.tools.split(","))
        tools = [t for t in tools if t.name in wanted or t.name.split()[0] in wanted]
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
