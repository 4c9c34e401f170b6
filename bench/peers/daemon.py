"""A private `ember daemon` for a benchmark, and an HTTP/1.1 client for its unix socket.

The daemon gets its own data dir, run dir and cgroup pool name under a temp dir, so it never
meets the host's daemon or `ember run`'s state, and everything it made can be removed by
stopping it (SIGTERM: it tears its instances down) and running `ember cleanup` on its run dir
(idle image mounts, the cgroup pool).

The image is not rebuilt: the python3.11 blob of the main data dir (what `ember image inspect`
finds, as bench/run.sh does) is hard-linked into the private store (copied across file systems).
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

from .tools import ToolError, run_checked

DAEMON_START_TIMEOUT_S = 30.0
DAEMON_STOP_TIMEOUT_S = 60.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; keep-alive works as for TCP (one request at a time)."""

    def __init__(self, path: str, timeout: float = 120.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, ms: float):
        self.status = status
        self.headers = headers  # names lower-cased
        self.body = body
        self.ms = ms

    def json(self):
        return json.loads(self.body) if self.body else None

    def error_text(self) -> str:
        return f"HTTP {self.status}: {self.body.decode(errors='replace').strip()[:600]}"


class Client:
    """One persistent connection to the daemon. request() times the whole exchange on the
    client: from before the request is written to after the body is read. Connecting is done
    before the clock starts (a keep-alive connection is what a busy front end has)."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.conn = UnixHTTPConnection(socket_path)

    def close(self) -> None:
        self.conn.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> Answer:
        for attempt in (1, 2):
            if self.conn.sock is None:
                self.conn.connect()
            headers = {"Content-Type": content_type} if body is not None else {}
            try:
                t0 = time.perf_counter_ns()
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                t1 = time.perf_counter_ns()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The daemon closes a connection idle for 60 s; a new one, then the same request
                # again (the first never reached the daemon).
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.conn.close()
            return Answer(resp.status, headers_out, data, (t1 - t0) / 1e6)
        raise AssertionError("unreachable")

    def invoke(self, function: str, event: bytes, boot: str | None = None) -> Answer:
        path = f"/v1/functions/{urllib.parse.quote(function)}/invoke"
        if boot:
            path += f"?boot={boot}"
        return self.request("POST", path, event)

    def instances(self) -> list[dict]:
        answer = self.request("GET", "/v1/instances")
        if answer.status != 200:
            raise ToolError(f"GET /v1/instances: {answer.error_text()}")
        return answer.json()["instances"]

    def delete_instance(self, instance_id: str, timeout_s: float = 30.0) -> None:
        """Stops an instance and waits until the daemon has reaped it (it leaves the list when
        its process is gone), so its teardown does not overlap the next measurement."""
        answer = self.request("DELETE", f"/v1/instances/{urllib.parse.quote(instance_id)}")
        if answer.status not in (204, 404):
            raise ToolError(f"DELETE /v1/instances/{instance_id}: {answer.error_text()}")
        deadline = time.monotonic() + timeout_s
        while any(i["id"] == instance_id for i in self.instances()):
            if time.monotonic() > deadline:
                raise ToolError(f"instance {instance_id} still listed {timeout_s:.0f}s after "
                                "DELETE")
            time.sleep(0.002)


def parse_server_timing(value: str) -> dict[str, float]:
    """`sandbox;dur=0.412, init;dur=0.000, ...` -> {"sandbox": 0.412, "init": 0.0, ...} (ms)."""
    phases: dict[str, float] = {}
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, v = param.strip().partition("=")
            if key == "dur":
                try:
                    phases[name.strip()] = float(v)
                except ValueError:
                    pass
    return phases


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMBER_SOCKET", "EMBER_DATA_DIR", "EMBER_RUN_DIR")}
    env.update(extra)
    return env


def main_store_image(ember: str, image: str, log) -> dict:
    """`ember image inspect IMAGE` on the main data dir (EMBER_DATA_DIR or the default), after
    `ember image build IMAGE` if it is not there: the record with `blob` and `digest`."""
    inspect = run_checked([ember, "image", "inspect", image])
    if inspect.returncode != 0:
        log(f"building ember's {image} image (once): {ember} image build {image}")
        built = run_checked([ember, "image", "build", image], timeout=1800)
        if built.returncode != 0:
            raise ToolError(f"ember image build {image}: {built.stderr.strip()[-400:]}")
        inspect = run_checked([ember, "image", "inspect", image])
        if inspect.returncode != 0:
            raise ToolError(f"ember image inspect {image}: {inspect.stderr.strip()[-400:]}")
    record = json.loads(inspect.stdout)
    if not record.get("blob") or not record.get("digest"):
        raise ToolError(f"ember image inspect {image}: no blob/digest in {inspect.stdout[:300]}")
    return record


class EmberDaemon:
    """`ember daemon` on a private data dir, run dir and cgroup pool name; `daemon_flags` go to
    `ember daemon` (the fork-boot burst needs --queue-size)."""

    def __init__(self, ember: str, root: Path, cgroup_name: str, log,
                 daemon_flags: list[str] | None = None):
        self.ember = ember
        self.root = root
        self.data_dir = root / "data"
        self.run_dir = root / "run"
        self.socket = str(self.run_dir / "ember.sock")
        self.log_file = root / "daemon.log"
        self.env = clean_env({"EMBER_CGROUP_NAME": cgroup_name})
        self.proc: subprocess.Popen | None = None
        self.log = log
        self.daemon_flags = daemon_flags or []

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return run_checked([self.ember, "--data-dir", str(self.data_dir), "--run-dir",
                            str(self.run_dir), "--socket", self.socket, *args],
                           timeout=timeout, env=self.env)

    def provide_image(self, image: str) -> None:
        record = main_store_image(self.ember, image, self.log)
        for sub in ("images", "refs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        blob = self.data_dir / "images" / f"{record['digest']}.erofs"
        if not blob.exists():
            try:
                os.link(record["blob"], blob)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copy2(record["blob"], blob)
        ref = dict(record, blob=str(blob))
        (self.data_dir / "refs" / f"{image}.json").write_text(json.dumps(ref, indent=2) + "\n")
        check = self.cli("image", "inspect", image)
        if check.returncode != 0:
            raise ToolError(f"the private store does not accept the linked image: "
                            f"{check.stderr.strip()[-400:]}")

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.ember, "--data-dir", str(self.data_dir), "--run-dir", str(self.run_dir),
                 "--socket", self.socket, "daemon", *self.daemon_flags],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise ToolError(f"ember daemon exited with status {self.proc.returncode}: "
                                f"{self.log_tail()}")
            try:
                client = Client(self.socket)
                try:
                    if client.request("GET", "/v1/healthz").status == 200:
                        return
                finally:
                    client.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ToolError(f"ember daemon did not answer on {self.socket} within "
                                f"{DAEMON_START_TIMEOUT_S:.0f}s: {self.log_tail()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def deploy(self, bundle: Path) -> str:
        out = self.cli("deploy", str(bundle), timeout=300)
        if out.returncode != 0:
            raise ToolError(f"ember deploy {bundle.name}: "
                            f"{(out.stderr.strip() or out.stdout.strip())[-800:]}")
        return (out.stdout.strip() or out.stderr.strip()).splitlines()[-1]

    def version(self) -> str:
        return run_checked([self.ember, "--version"]).stdout.strip()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " / ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> list[str]:
        """SIGTERM (instances are torn down), then `ember cleanup` on the private run dir.
        Returns warnings; never raises, it runs in finally blocks."""
        warnings = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DAEMON_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                warnings.append(f"ember daemon ignored SIGTERM for {DAEMON_STOP_TIMEOUT_S:.0f}s; "
                                "killed")
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session, started above
                self.proc.wait()
            if self.proc.returncode not in (0, None):
                warnings.append(f"ember daemon exited with status {self.proc.returncode}: "
                                f"{self.log_tail()}")
        if self.run_dir.exists():
            try:
                out = self.cli("cleanup")
                if out.returncode != 0:
                    warnings.append(f"ember cleanup: {out.stderr.strip()[-400:]}")
            except (OSError, subprocess.SubprocessError) as e:
                warnings.append(f"ember cleanup: {e}")
        return warnings


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    found = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if (mount_point + "/").startswith(prefix):
                found.append(mount_point)
    except OSError:
        pass
    return found
