"""The peers of bench/restore_boot.py: a checkpointed handler restored by gVisor, runc + CRIU and
bare CRIU, timed from the restore command's start to the handler's answer.

Each peer runs the same program, `peer_code(imports)`: it imports what the light or heavy
handler imports, creates `<exchange>/ready`, then waits (a 0.5 ms sleep loop) for
`<exchange>/go`. The benchmark checkpoints it while it waits, creates `go`, and from then on
every restore resumes a process that finds `go` at once, runs the handler on the event, writes
its JSON answer to `<exchange>/answer` and exits. One sample is: spawn `runsc restore` / `runc
restore` / `criu restore` → the answer file is complete (inotify on the host directory,
answer_watch.py), as ember's sample ends with the answer; the command's exit (the restored
process gone, its container torn down) is recorded beside it (exit_ms). The exchange directory
is a host directory, bind-mounted at /mnt in the containers (the image's /mnt is empty). The
sleep loop adds at most 0.5 ms to the peers; ember is woken by its invocation instead.

A peer whose checkpoint fails keeps the error (CRIU's own log lines where it wrote them) and is
reported as failed, never dropped: Debian's criu 3.17 fails on this kernel's vDSO layout, and
runc uses it. `--criu PATH` points both CRIU peers at another build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .answer_watch import AnswerWatch
from .invoke_variants import Sample, Variant
from .scenarios import EVENT, EXPECTED_ANSWER, HANDLER, PYTHON_IN_IMAGE
from .tools import ToolError, oci_config, run_checked

READY_TIMEOUT_S = 60.0
RESTORE_TIMEOUT_S = 60.0
EXCHANGE_IN_CONTAINER = "/mnt"

RUNSC = "runsc restore"
RUNC = "runc + CRIU restore"
CRIU = "bare CRIU restore"
CRIU_ERROR = re.compile(r"Error \([^)]*\):\s*(.*)")  # "(00.03) Error (criu/vdso.c:381): why"
GO_LOG_MSG = re.compile(r'level=\w+ msg="((?:[^"\\]|\\.)*)"')  # runc's logrus lines


def runtime_messages(out: str) -> str:
    """runc's stderr without logrus' time/level decoration (its msg fields, joined)."""
    msgs = [m.group(1).replace("\\n", " ") for m in GO_LOG_MSG.finditer(out)]
    return "; ".join(msgs) if msgs else out.strip()


def peer_code(imports: str) -> str:
    """The checkpointed program: the handler's imports done, then a wait for `go`."""
    return (f"import {imports}\n{HANDLER}"
            "import os, sys, time\n"
            "X = sys.argv[1]\n"
            "open(X + '/ready', 'w').close()\n"
            "while not os.path.exists(X + '/go'):\n"
            "    time.sleep(0.0005)\n"
            "with open(X + '/answer', 'w') as f:\n"
            f"    f.write(json.dumps(handler(json.loads({EVENT!r}))))\n")


def answer_complete(path: Path) -> bool:
    """The answer file holds the whole JSON answer (it may be seen half-written)."""
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def criu_log_errors(log: Path, limit: int = 4) -> str:
    """CRIU's `Error` lines from its log (the reason a dump or restore failed), shortened."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {log.name})"
    errors = [m.group(1).strip() for ln in lines if (m := CRIU_ERROR.search(ln))]
    errors = [e for e in errors if "exited, status" not in e] or errors
    return "; ".join(errors[:limit]) or f"(no error line in {log.name})"


class RestorePeer(Variant):
    """One peer for one handler. prepare() starts the program, waits for `ready`, checkpoints it
    and sets `error` when any of that fails; measure() is one timed restore-to-answer."""

    def __init__(self, name: str, root: Path, code: str, error: str | None = None):
        super().__init__(name, error)
        self.root = root
        self.code = code
        self.exchange = root / "exchange"
        self.image = root / "image"
        self.runs = 0
        self.watch: AnswerWatch | None = None
        self.exit_ms: list[float] = []  # restore start → the command's exit, per good sample

    # ---- what the subclasses provide ----
    def checkpoint(self) -> None:
        raise NotImplementedError

    def restore_argv(self, run_id: str) -> list[str]:
        raise NotImplementedError

    def before_restore(self, run_id: str) -> None:
        """Untimed preparation of one restore."""

    def after_restore(self, run_id: str) -> None:
        """Untimed cleanup of one restore (delete the container)."""

    def restore_failure(self, out: str) -> str:
        return out

    def teardown(self) -> None:
        self.close_watch()

    def close_watch(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    # ---- common ----
    def prepare(self) -> None:
        if self.error:
            return
        try:
            shutil.rmtree(self.root, ignore_errors=True)
            self.exchange.mkdir(parents=True)
            os.chmod(self.exchange, 0o777)
            self.image.mkdir()
            self.checkpoint()
            (self.exchange / "go").touch()
        except (ToolError, OSError, subprocess.SubprocessError) as e:
            self.error = str(e)

    def wait_ready(self, proc: subprocess.Popen, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (self.exchange / "ready").exists():
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ToolError(f"{what} exited with status {proc.returncode} before it was "
                                f"ready: {err.strip()[-400:]}")
            if time.monotonic() > deadline:
                raise ToolError(f"{what}: not ready after {READY_TIMEOUT_S:.0f}s")
            time.sleep(0.01)

    def measure(self) -> list[Sample]:
        """One restore: (ms to the answer, problem, None); the ms to the command's exit go to
        exit_ms."""
        self.runs += 1
        run_id = f"{os.getpid():x}-{self.runs}"
        answer = self.exchange / "answer"
        answer.unlink(missing_ok=True)
        if self.watch is None:
            self.watch = AnswerWatch(self.exchange)
        self.watch.drain()
        self.before_restore(run_id)
        try:
            argv = self.restore_argv(run_id)
            t0 = time.perf_counter_ns()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                answered, said = self.watch.wait("answer", answer_complete, proc.stdout,
                                                 time.monotonic() + RESTORE_TIMEOUT_S)
                rest, _ = proc.communicate(timeout=RESTORE_TIMEOUT_S)
                exited = time.perf_counter_ns()
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's session
                proc.communicate()
                return [(float("nan"), f"{argv[0]}: timed out after {RESTORE_TIMEOUT_S:.0f}s",
                         None)]
            got = answer.read_text() if answer.exists() else None
        finally:
            self.after_restore(run_id)
        text = (said + rest).decode(errors="replace").strip()
        ms = (answered - t0) / 1e6 if answered else float("nan")
        if proc.returncode != 0:
            return [(ms, f"exit status {proc.returncode}: "
                     f"{self.restore_failure(text)[-600:]}", None)]
        if answered is None or got is None or json.loads(got) != json.loads(EXPECTED_ANSWER):
            return [(ms, f"unexpected answer {got!r} (output {text[-300:]!r})", None)]
        self.exit_ms.append((exited - t0) / 1e6)
        return [(ms, None, None)]


class OciRestorePeer(RestorePeer):
    """runsc or runc: `run` the program in a container, `checkpoint` it, `restore` it again and
    again under new container ids (each with its own cgroup), deleting each after its sample."""

    binary = "?"
    global_flags: list[str] = []

    def __init__(self, name: str, root: Path, code: str, rootfs: str, cgroup_parent: str,
                 error: str | None = None):
        super().__init__(name, root, code, error)
        self.rootfs, self.cgroup_parent = rootfs, cgroup_parent
        self.state = root / "state"
        self.bundle = root / "bundle"
        self.containers: set[str] = set()

    def base(self) -> list[str]:
        return [self.binary, "--root", str(self.state), *self.global_flags]

    def write_config(self, cid: str) -> None:
        cfg = oci_config(self.rootfs, f"{self.cgroup_parent}/{cid}")
        cfg["process"]["args"] = [PYTHON_IN_IMAGE, "-c", self.code, EXCHANGE_IN_CONTAINER]
        cfg["mounts"].append({"destination": EXCHANGE_IN_CONTAINER, "type": "bind",
                              "source": str(self.exchange), "options": ["rbind", "rw"]})
        self.bundle.mkdir(parents=True, exist_ok=True)
        (self.bundle / "config.json").write_text(json.dumps(cfg, indent=1))

    def cid(self, run_id: str) -> str:
        return f"{self.root.name}-{run_id}"  # the root is per peer and handler

    def checkpoint_argv(self, cid: str) -> list[str]:
        raise NotImplementedError

    def checkpoint_failure(self, out: str) -> str:
        return out

    def checkpoint(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        cid = self.cid("ckpt")
        self.write_config(cid)
        self.containers.add(cid)
        proc = subprocess.Popen([*self.base(), "run", "--bundle", str(self.bundle), cid],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            self.wait_ready(proc, f"{self.binary} run")
            out = run_checked(self.checkpoint_argv(cid), timeout=120)
            if out.returncode != 0:
                raise ToolError(f"{self.binary} checkpoint: "
                                f"{self.checkpoint_failure(out.stderr.strip() or out.stdout)}")
            proc.wait(timeout=30)  # the checkpoint stops the container
        finally:
            if proc.poll() is None:
                self.delete(cid)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.delete(cid)

    def delete(self, cid: str) -> None:
        run_checked([*self.base(), "delete", "--force", cid], timeout=60)
        self.containers.discard(cid)

    def before_restore(self, run_id: str) -> None:
        cid = self.cid(run_id)
        self.write_config(cid)
        self.containers.add(cid)

    def after_restore(self, run_id: str) -> None:
        self.delete(self.cid(run_id))

    def teardown(self) -> None:
        self.close_watch()
        for cid in list(self.containers):
            try:
                self.delete(cid)
            except (OSError, subprocess.SubprocessError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class RunscRestorePeer(OciRestorePeer):
    binary = "runsc"
    # As the cold-start peer (tools.Runsc): ptrace platform, no network stack.
    global_flags = ["--platform=ptrace", "--network=none"]

    def checkpoint_argv(self, cid):
        return [*self.base(), "checkpoint", "--image-path", str(self.image), cid]

    def restore_argv(self, run_id):
        return [*self.base(), "restore", "--image-path", str(self.image), "--bundle",
                str(self.bundle), self.cid(run_id)]


class RuncRestorePeer(OciRestorePeer):
    binary = "runc"

    def __init__(self, *a, criu: str = "criu", **kw):
        super().__init__(*a, **kw)
        self.global_flags = ["--criu", criu]
        self.work = self.root / "criu-work"

    def checkpoint_argv(self, cid):
        self.work.mkdir(parents=True, exist_ok=True)
        return [*self.base(), "checkpoint", "--image-path", str(self.image), "--work-path",
                str(self.work), cid]

    def checkpoint_failure(self, out: str) -> str:
        # CRIU's reason first: runc's own lines only say that criu failed.
        return (f"criu dump.log: {criu_log_errors(self.work / 'dump.log')}; runc: "
                f"{runtime_messages(out)[-300:]}")

    def restore_argv(self, run_id):
        return [*self.base(), "restore", "--image-path", str(self.image), "--work-path",
                str(self.work), "--bundle", str(self.bundle), self.cid(run_id)]

    def restore_failure(self, out: str) -> str:
        return (f"criu restore.log: {criu_log_errors(self.work / 'restore.log')}; runc: "
                f"{runtime_messages(out)[-300:]}")


class BareCriuPeer(RestorePeer):
    """The host's python3.11 (same version as the image's), no namespaces, no cgroup: `criu dump`
    of the waiting process, then `criu restore` in the foreground (it waits for the restored
    process to exit). The restored process gets its old pid back, so nothing else may take it
    meanwhile; CRIU says so when it happened."""

    def __init__(self, name: str, root: Path, code: str, python: str | None, criu: str = "criu",
                 error: str | None = None):
        super().__init__(name, root, code, error)
        self.python, self.criu = python, criu

    def checkpoint(self) -> None:
        if not self.python:
            raise ToolError("no python3.11 on the host")
        proc = subprocess.Popen([self.python, "-c", self.code, str(self.exchange)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
        try:
            self.wait_ready(proc, "python3.11")
            out = run_checked([self.criu, "dump", "-t", str(proc.pid), "-D", str(self.image),
                               "-o", "dump.log"], timeout=120)
            if out.returncode != 0:
                raise ToolError(f"criu dump: exit status {out.returncode}: "
                                f"{criu_log_errors(self.image / 'dump.log')}")
        finally:
            if proc.poll() is None:
                proc.kill()  # ours; the dump failed and left it running
            proc.wait()

    def restore_argv(self, run_id):
        return [self.criu, "restore", "-D", str(self.image), "-o", "restore.log"]

    def restore_failure(self, out: str) -> str:
        return f"{out[-200:]}; restore.log: {criu_log_errors(self.image / 'restore.log')}"

    def teardown(self) -> None:
        self.close_watch()
        shutil.rmtree(self.root, ignore_errors=True)


def tool_version(argv: list[str]) -> str:
    try:
        out = run_checked(argv, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"
    text = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return text[0] if text else "?"
