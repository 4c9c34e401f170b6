"""One timed run of a command-line tool: spawn, wait, read its output, check the answer.

Shared by run_vs_peers.py (ember run against the peers) and invoke_latency.py (the peers as
the reference for invocations through the daemon), so both time the peers the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .tools import OciRuntime, Tool

PER_RUN_TIMEOUT_S = 60.0


def spawn_and_time(tool: Tool, argv: list[str]) -> tuple[float, int, str, str]:
    """(ms, exit status, stdout, stderr): wall clock from just before the spawn to just after
    the child is reaped and its output read. tool.before/after (crun's setns) are untimed."""
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


def run_tool_once(tool: Tool, cmd: list[str], expect: str | None,
                  run_id: str) -> tuple[float, str | None]:
    """Runs `cmd` under `tool` once: (ms, None) or (ms, what was wrong). The container is
    deleted after the clock stops."""
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
    elif expect is not None and expect not in out:
        problem = f"unexpected output {out.strip()[-200:]!r} (stderr {err.strip()[-300:]!r})"
    return ms, problem
