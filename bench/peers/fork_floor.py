"""The raw floor of fork boot: an unsandboxed python3.11 that forks on request.

Run as a script (by the host's python3.11, the same interpreter version as the image's) it is a
tiny fork server: it imports the handler module once, calls `gc.freeze()` as ember's template
does, and listens on a unix socket. For every request line (an event, JSON) it forks; the child
calls `handle(event, context)` and writes the JSON answer on the same connection, then exits.
No namespace, no cgroup, no seccomp, no new connection: what is left is what any fork boot pays
at least (the fork of an initialized interpreter, its at-fork hooks, the handler, the answer).

    python3.11 fork_floor.py --socket PATH --module-dir DIR [--module main]
                             [--isolate --lower DIR --scratch DIR --cgroup-procs FILE...]

With --isolate it is the **isolated floor**: each child, right after the fork and before it
answers, does the kernel work every fork-booted sandbox needs at minimum (issue 4): it writes
itself into a pre-created memory+cpu+pids cgroup (through cgroup.procs files the server opened
once), unshares mount, ipc, uts, network and cgroup namespaces (no pid namespace: a new one
takes effect only for the children of the caller, so it would need a second fork), makes its
mounts private, mounts a 64 MiB tmpfs, an overlay with the image (--lower) as its lower layer
and the tmpfs as upper, and a /proc on it. Its mounts and namespaces go away with it at exit.

Imported (by bench/fork_boot.py) it gives FloorServer, which starts the script, and a client
that times request → answer over one connection made before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 30.0


# ---- the server (runs in the host's python3.11, stdlib only) ---------------------------------


# unshare(2) flags; the pid namespace is left out (see the module docstring).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
ISOLATE_FLAGS = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
LAYER_OPTIONS = b"mode=0755,size=67108864"  # ember's writable layer: 64 MiB (tmpfs_size)


class Isolation:
    """What an isolated-floor child does between the fork and its answer. Everything it can
    prepare once (libc, the cgroup.procs fds, the paths) is prepared in the server."""

    def __init__(self, lower: str, scratch: str, cgroup_procs: list[str]):
        import ctypes

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.get_errno = ctypes.get_errno
        self.procs_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in cgroup_procs]
        self.layer = os.path.join(scratch, "layer")
        self.root = os.path.join(scratch, "root")
        for d in (self.layer, self.root):
            os.makedirs(d, exist_ok=True)
        self.upper, self.work = self.layer + "/upper", self.layer + "/work"
        self.overlay_options = (f"lowerdir={lower},upperdir={self.upper},"
                                f"workdir={self.work}").encode()
        self.b_layer, self.b_root = self.layer.encode(), self.root.encode()
        self.b_proc = (self.root + "/proc").encode()

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            err = self.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def enter(self) -> None:
        # The cgroup first, so that what follows (the namespaces, the tmpfs) is charged to it,
        # as a sandbox is in its cgroup before it runs; and the new cgroup namespace is rooted
        # at it.
        for fd in self.procs_fds:
            os.write(fd, b"0")
        libc = self.libc
        self._check(libc.unshare(ISOLATE_FLAGS), "unshare")
        # A new mount namespace starts with the host's propagation: without this the mounts
        # below would appear on the host.
        self._check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
                    "make / rprivate")
        self._check(libc.mount(b"tmpfs", self.b_layer, b"tmpfs", MS_NOSUID | MS_NODEV,
                               LAYER_OPTIONS), "mount the tmpfs layer")
        os.mkdir(self.upper, 0o755)
        os.mkdir(self.work, 0o755)
        self._check(libc.mount(b"overlay", self.b_root, b"overlay", MS_NOSUID | MS_NODEV,
                               self.overlay_options), "mount the overlay")
        self._check(libc.mount(b"proc", self.b_proc, b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                               None), "mount /proc")


def serve(socket_path: str, module_dir: str, module_name: str,
          isolation: Isolation | None = None) -> None:
    import gc
    import importlib
    import signal

    sys.path.insert(0, module_dir)
    module = importlib.import_module(module_name)
    handle = module.handle
    gc.collect()
    gc.freeze()  # as ember's template: the children's refcount writes do not touch gc lists
    # Children are reaped by the kernel: the parent never waits, as a template reaps
    # asynchronously and the caller is answered by the child.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        reader = conn.makefile("rb")  # buffered: one recv per request line
        while True:
            line = reader.readline()
            if not line:
                break
            pid = os.fork()  # runs Python's at-fork hooks (random is reseeded), as ember does
            if pid == 0:
                try:
                    problem = None
                    if isolation is not None:
                        try:
                            isolation.enter()
                        except OSError as e:  # answered, so the client sees why
                            problem = str(e)
                    answer = {"isolation failed": problem} if problem else \
                        handle(json.loads(line), {"function_name": "floor"})
                    conn.sendall(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                finally:
                    os._exit(0)
        reader.close()
        conn.close()


# ---- the client side (bench/fork_boot.py) ----------------------------------------------------


class FloorError(Exception):
    pass


# The isolated floor's one cgroup is shared by all its children, a burst's included, so its
# limits are ember's per-instance ones scaled to leave room for many at once: the charge is
# what is measured, and it costs the same whatever the limit, as long as none is reached.
SHARED_CGROUP_MEMORY = 1 << 30
SHARED_CGROUP_PIDS = 4096


class FloorServer:
    """One fork server for one handler module: started once, used over one connection.

    With `lower` (the image's root) it is the isolated floor: its cgroup is made under
    `cgroup_parent` at start() and removed at stop()."""

    def __init__(self, python: str, module_source: str, workdir: Path, kind: str,
                 lower: str | None = None, cgroup_parent: str | None = None):
        self.python = python
        self.dir = workdir / (f"isofloor-{kind}" if lower else f"floor-{kind}")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "main.py").write_text(module_source)
        self.socket_path = str(self.dir / "floor.sock")
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.reader = None
        self.lower = lower
        self.cgroup = None
        self.warnings: list[str] = []
        if lower:
            from .floor_cgroup import FloorCgroup, floor_cgroup_path  # not in the server

            self.cgroup = FloorCgroup(
                floor_cgroup_path(cgroup_parent or "/ember-bench", f"isofloor-{kind}"),
                memory=SHARED_CGROUP_MEMORY, pids=SHARED_CGROUP_PIDS)

    def server_argv(self) -> list[str]:
        argv = [self.python, "-I", str(Path(__file__).resolve()), "--socket", self.socket_path,
                "--module-dir", str(self.dir)]
        if self.cgroup is not None:
            argv += ["--isolate", "--lower", self.lower, "--scratch", str(self.dir / "mnt")]
            for procs in self.cgroup.procs_files():
                argv += ["--cgroup-procs", procs]
        return argv

    def start(self) -> None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        if self.cgroup is not None:
            from .floor_cgroup import FloorCgroupError

            try:
                self.cgroup.create()
            except FloorCgroupError as e:
                self.stop()
                raise FloorError(f"the isolated floor's cgroup: {e}") from e
        self.proc = subprocess.Popen(
            self.server_argv(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = self.proc.stdout.readline()  # "ready" once the module is imported
        if line.strip() != b"ready":
            why = self.proc.stderr.read().decode(errors="replace")[-400:]  # before stop() closes it
            self.stop()
            raise FloorError(f"the fork server did not start: {why}")
        while not os.path.exists(self.socket_path):
            if time.monotonic() > deadline:
                raise FloorError("the fork server made no socket")
            time.sleep(0.01)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(ANSWER_TIMEOUT_S)
        self.sock.connect(self.socket_path)
        self.reader = self.sock.makefile("rb")

    def request(self, event: bytes) -> tuple[float, bytes]:
        """(ms, answer line): from before the request is written to after the child's answer
        has been read."""
        if self.sock is None:
            raise FloorError("the fork server is not running")
        t0 = time.perf_counter_ns()
        self.sock.sendall(event + b"\n")
        answer = self.reader.readline()
        t1 = time.perf_counter_ns()
        if not answer:
            code = self.proc.poll() if self.proc else None
            raise FloorError(f"the fork server closed the connection (exit status {code})")
        return (t1 - t0) / 1e6, answer

    def version(self) -> str:
        out = subprocess.run([self.python, "--version"], capture_output=True, text=True)
        return out.stdout.strip() or out.stderr.strip()

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the server only; its children have answered and exited
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        if self.cgroup is not None:
            problem = self.cgroup.remove()  # waits for the last children to leave it
            if problem:
                self.warnings.append(problem)


def floor_burst(server: FloorServer, event: bytes, n: int, expected: dict) -> dict:
    """The raw floor of a burst: n request lines written at once on the server's connection; the
    server forks one child per line and each child answers. forks/s is the answers over the time
    from the write to the last answer read: the most fork boots per second this machine can do
    with no sandbox at all (one forking process, as one template is), the ceiling for ember's
    burst in the same run."""
    if server.sock is None or server.reader is None:
        return {"error": "the fork server is not running", "requested": n}
    t0 = time.perf_counter_ns()
    server.sock.sendall((event + b"\n") * n)
    ok = wrong = 0
    for _ in range(n):
        line = server.reader.readline()
        if not line:
            break
        if check_floor_answer(line, expected) is None:
            ok += 1
        else:
            wrong += 1
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    return {"requested": n, "ok": ok, "wrong": wrong, "wall_ms": wall_ms,
            "forks_per_s": ok / (wall_ms / 1e3) if wall_ms > 0 else None}


def check_floor_answer(answer: bytes, expected: dict) -> str | None:
    try:
        got = json.loads(answer)
    except ValueError:
        return f"not JSON: {answer[:200]!r}"
    return None if got == expected else f"unexpected answer {answer[:200]!r}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="fork server: the raw floor of fork boot")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--module", default="main")
    ap.add_argument("--isolate", action="store_true",
                    help="the isolated floor: namespaces, cgroup, overlay and /proc per child")
    ap.add_argument("--lower", help="with --isolate: the overlay's lower layer (the image)")
    ap.add_argument("--scratch", help="with --isolate: where the tmpfs and overlay are mounted")
    ap.add_argument("--cgroup-procs", action="append", default=[],
                    help="with --isolate: a cgroup.procs each child writes itself into")
    a = ap.parse_args()
    if a.isolate and not (a.lower and a.scratch):
        ap.error("--isolate needs --lower and --scratch")
    serve(a.socket, a.module_dir, a.module,
          Isolation(a.lower, a.scratch, a.cgroup_procs) if a.isolate else None)
