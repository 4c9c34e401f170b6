"""The raw floor of fork boot: an unsandboxed python3.11 that forks on request.

Run as a script (by the host's python3.11, the same interpreter version as the image's) it is a
tiny fork server: it imports the handler module once, calls `gc.freeze()` as ember's template
does, and listens on a unix socket. For every request line (an event, JSON) it forks; the child
calls `handle(event, context)` and writes the JSON answer on the same connection, then exits.
No namespace, no cgroup, no seccomp, no new connection: what is left is what any fork boot pays
at least (the fork of an initialized interpreter, its at-fork hooks, the handler, the answer).

    python3.11 fork_floor.py --socket PATH --module-dir DIR [--module main]

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


def serve(socket_path: str, module_dir: str, module_name: str) -> None:
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
                    answer = handle(json.loads(line), {"function_name": "floor"})
                    conn.sendall(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                finally:
                    os._exit(0)
        reader.close()
        conn.close()


# ---- the client side (bench/fork_boot.py) ----------------------------------------------------


class FloorError(Exception):
    pass


class FloorServer:
    """One fork server for one handler module: started once, used over one connection."""

    def __init__(self, python: str, module_source: str, workdir: Path, kind: str):
        self.python = python
        self.dir = workdir / f"floor-{kind}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "main.py").write_text(module_source)
        self.socket_path = str(self.dir / "floor.sock")
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.reader = None

    def start(self) -> None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.proc = subprocess.Popen(
            [self.python, "-I", str(Path(__file__).resolve()), "--socket",
             self.socket_path, "--module-dir", str(self.dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = self.proc.stdout.readline()  # "ready" once the module is imported
        if line.strip() != b"ready":
            self.stop()
            raise FloorError(f"the fork server did not start: "
                             f"{self.proc.stderr.read().decode(errors='replace')[-400:]}")
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
    a = ap.parse_args()
    serve(a.socket, a.module_dir, a.module)
