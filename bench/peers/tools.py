"""How each tool is set up and run: ember, unshare+chroot, unshare+overlay+cgroup, full mandate
(C), crun, runc, runsc and host python.

A Tool turns a scenario's command into the argv that runs it under that tool, and owns what
must happen around the timed spawn (crun's mount namespace) and after it (container deletion).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .floor_cgroup import FloorCgroup, FloorCgroupError, floor_cgroup_path
from .host import MountNamespace, cgroup_layout
from .scenarios import MEMORY_FLAG, MEMORY_LIMIT


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


class EmberRunIsolated(Ember):
    """`ember run` with its own data dir, run dir and cgroup pool name (bench/invoke_latency.py
    runs it beside a private daemon): it shares nothing live with the daemon and leaves nothing
    in the host's ember state once teardown() has run `ember cleanup` on its run dir."""
    name = "ember run"

    def __init__(self, binary: str, image: str, data_dir: Path, run_dir: Path, cgroup_name: str):
        super().__init__(binary, image)
        self.data_dir, self.run_dir, self.cgroup_name = data_dir, run_dir, cgroup_name
        self.saved_env: str | None = None

    def dirs(self) -> list[str]:
        return [self.binary, "--data-dir", str(self.data_dir), "--run-dir", str(self.run_dir)]

    def argv(self, cmd, run_id):
        return [*self.dirs(), "run", "--image", self.image, "--memory", MEMORY_FLAG, "--", *cmd]

    # The pool's name comes only from the environment; Popen copies os.environ at the spawn,
    # and before/after run outside the timed region.
    def before(self):
        self.saved_env = os.environ.get("EMBER_CGROUP_NAME")
        os.environ["EMBER_CGROUP_NAME"] = self.cgroup_name

    def after(self):
        if self.saved_env is None:
            os.environ.pop("EMBER_CGROUP_NAME", None)
        else:
            os.environ["EMBER_CGROUP_NAME"] = self.saved_env

    def teardown(self):
        super().teardown()
        if self.run_dir.exists():
            out = run_checked([*self.dirs(), "cleanup"], timeout=120,
                              env=dict(os.environ, EMBER_CGROUP_NAME=self.cgroup_name))
            if out.returncode != 0:
                raise ToolError(f"ember cleanup of {self.run_dir}: {out.stderr.strip()[-300:]}")


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


class IsoFloor(Baseline):
    """The floor of issue 2's mandated rootfs and cgroup: the baseline's namespaces, then
    bench/peers/isofloor_exec.c (one exec, as the baseline's chroot) enters a
    pre-created memory+cpu+pids cgroup with ember's limits, mounts a 64 MiB tmpfs upper and an
    overlay with the image as lower, pivot_roots into it, detaches the old root, mounts /proc
    and execs the command. No seccomp, capability drop, user namespace or /dev: a floor."""
    name = "unshare+overlay+cgroup"
    HELPER_SOURCE = Path(__file__).resolve().parent / "isofloor_exec.c"
    LAYER_SIZE = "64M"  # ember's writable layer (SandboxSpec::tmpfs_size)

    def __init__(self, rootfs: str, workdir: Path, cgroup_parent: str):
        super().__init__(rootfs)
        self.dir = workdir / "isofloor"
        self.cgroup = FloorCgroup(floor_cgroup_path(cgroup_parent, "isofloor"))
        self.helper = self.dir / "isofloor-exec"

    def setup(self):
        super().setup()
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise ToolError("no C compiler (cc) to build the isolation floor's helper")
        for sub in ("layer", "root"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # Dynamically linked, as the baseline's chroot(1): the same loader work in the timed
        # exec, so floor − baseline is the mandated rootfs and cgroup, not a static binary's
        # saving (≈0.6 ms here by the minimum of 60 runs).
        built = run_checked([cc, "-O2", "-o", str(self.helper), str(self.HELPER_SOURCE)],
                            timeout=120)
        if built.returncode != 0:
            raise ToolError(f"building {self.HELPER_SOURCE.name}: {built.stderr.strip()[-300:]}")
        try:
            self.cgroup.create()
        except FloorCgroupError as e:
            self.cgroup.remove()
            raise ToolError(str(e)) from e
        self.version = f"{self.version}; overlay + cgroup helper built with {Path(cc).name}"

    def argv(self, cmd, run_id):
        return ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork",
                str(self.helper), self.rootfs, str(self.dir / "layer"), str(self.dir / "root"),
                self.LAYER_SIZE, *self.cgroup.procs_files(), "--", *cmd]

    def teardown(self):
        problem = self.cgroup.remove()
        if problem:
            raise ToolError(problem)


# ember's /proc masks (src/sandbox/mount_plan.cc): files bound over with /dev/null, directories
# bound over with an empty read-only one, subtrees made read-only.
PROC_MASKED_FILES = ("kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug",
                     "sysrq-trigger", "kallsyms", "kpagecount", "kpageflags", "kpagecgroup",
                     "config.gz")
PROC_MASKED_DIRS = ("acpi", "scsi", "driver")
PROC_READ_ONLY = ("sys", "bus", "fs", "irq", "asound")


def proc_mask_args(proc_root: str = "/proc") -> list[str]:
    """The three lists of ember's /proc masks this kernel has, as the full floor's helper takes
    them: comma-separated names, "-" for an empty list. Decided once per benchmark run (ember
    tries every path in every run and skips the absent ones on ENOENT)."""
    def present(names):
        have = [n for n in names if os.path.lexists(os.path.join(proc_root, n))]
        return ",".join(have) or "-"
    return [present(PROC_MASKED_FILES), present(PROC_MASKED_DIRS), present(PROC_READ_ONLY)]


def seccomp_filter_named(ember_stderr: str) -> Path | None:
    """The compiled strict filter `ember run -v` says its sandbox got ("ember: seccomp filter
    PATH (N instructions)"), None when it says none."""
    for line in ember_stderr.splitlines():
        match = re.match(r"ember: seccomp filter (\S+) \(\d+ instructions\)$", line)
        if match:
            return Path(match.group(1))
    return None


class FullFloor(Tool):
    """The floor of everything issue 2 mandates for a sandbox, in one small C program
    (bench/peers/fullfloor_exec.c) started as host root, with no abstraction and in ember's
    order: clone3 into new user, mount, pid, ipc and uts namespaces (the child unshares its
    network namespace), id maps and the pre-created memory+cpu+pids cgroup written by the parent;
    in the child ember's mount plan (tmpfs layer, overlay on the image, masked /proc, minimal
    read-only /dev, /tmp), pivot_root, hostname, loopback, rlimits, every capability dropped,
    no_new_privs and ember's own compiled seccomp filter; exec. The parent waits and exits with
    the command's status, as `ember run` does."""
    name = "full mandate (C)"
    key = "fullfloor"  # for --tools, without the spaces
    HELPER_SOURCE = Path(__file__).resolve().parent / "fullfloor_exec.c"

    def __init__(self, ember_binary: str, image: str, rootfs: str, workdir: Path,
                 cgroup_parent: str):
        super().__init__()
        self.ember_binary, self.image, self.rootfs = ember_binary, image, rootfs
        self.dir = workdir / "fullfloor"
        self.helper = self.dir / "fullfloor-exec"
        self.bpf = self.dir / "strict.bpf"
        self.cgroup = FloorCgroup(floor_cgroup_path(cgroup_parent, "fullfloor"))
        # The writable layer's mount point: walked by the child as host uid 100000, so not in
        # the benchmark's 0700 workdir. Made in setup, removed in teardown.
        self.scratch: Path | None = None
        self.proc_masks = ["-", "-", "-"]
        self.cap_last_cap = "40"

    def staging(self) -> Path:
        return (self.scratch or Path("/run/ember-bench-fullfloor-unset")) / "staging"

    def setup(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise ToolError("no C compiler (cc) to build the full floor's helper")
        self.dir.mkdir(parents=True, exist_ok=True)
        # Dynamically linked, as the other floors' helpers and chroot(1).
        built = run_checked([cc, "-O2", "-o", str(self.helper), str(self.HELPER_SOURCE)],
                            timeout=120)
        if built.returncode != 0:
            raise ToolError(f"building {self.HELPER_SOURCE.name}: {built.stderr.strip()[-300:]}")
        # The filter this ember installs, as it names it (compiled and cached on its first run).
        ran = run_checked([self.ember_binary, "run", "-v", "--image", self.image, "--",
                           "/bin/true"], timeout=120)
        src = seccomp_filter_named(ran.stderr)
        if ran.returncode != 0 or src is None or not src.is_file():
            raise ToolError(f"no compiled seccomp filter from `ember run -v -- /bin/true` "
                            f"(exit {ran.returncode}): {ran.stderr.strip()[-200:]}")
        shutil.copyfile(src, self.bpf)
        self.proc_masks = proc_mask_args()
        self.cap_last_cap = Path("/proc/sys/kernel/cap_last_cap").read_text().strip()
        self.scratch = Path(tempfile.mkdtemp(prefix="ember-bench-fullfloor-", dir="/run"))
        self.scratch.chmod(0o755)
        self.staging().mkdir(mode=0o755)
        try:
            self.cgroup.create()
        except FloorCgroupError as e:
            self.cgroup.remove()
            raise ToolError(str(e)) from e
        insns = (self.bpf.stat().st_size - 32) // 8
        self.version = (f"helper built with {Path(cc).name}; ember's seccomp filter {src.name} "
                        f"({insns} instructions)")

    def argv(self, cmd, run_id):
        return [str(self.helper), str(self.bpf), self.rootfs, str(self.staging()),
                self.cap_last_cap, *self.proc_masks, *self.cgroup.procs_files(), "--", *cmd]

    def teardown(self):
        # Every mount the helper makes lives in its child's private mount namespace and goes
        # with it; what is left on the host is the cgroup and the scratch dirs.
        problems = []
        problem = self.cgroup.remove()
        if problem:
            problems.append(problem)
        if self.scratch is not None:
            try:
                if self.staging().exists():
                    self.staging().rmdir()  # EBUSY if a mount were left on it
                self.scratch.rmdir()
            except OSError as e:
                problems.append(f"scratch dir {self.scratch}: {e.strerror}")
            else:
                self.scratch = None
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise ToolError("; ".join(problems))


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
