"""Fork-boot invoke latency (bench/fork_boot.py, part 1): what is compared, and the figures.

Variants of one handler, interleaved round by round by invoke_variants.run_group:

  * ember fork boot   `POST …/invoke?boot=fork`, each a freshly forked instance (checked);
  * ember plain boot  `POST …/invoke?boot=plain`, the same handler booted from nothing;
  * raw floor         the fork server of fork_floor.py: request → fork → the child answers;
  * isolated floor    the same fork server with --isolate: each child first enters a cgroup,
                      unshares mount/ipc/uts/net/cgroup namespaces, mounts a tmpfs, an overlay
                      of the image and a /proc (the minimum issue 4 mandates, no pid namespace);
  * crun, runc, runsc the handler started cold (the peer scenarios of run_vs_peers.py).

The instances a round made are deleted after the round's samples (untimed, and waited for), so
the function never reaches max_instances and memory stays bounded.
"""

from __future__ import annotations

import json

from .daemon import Client, parse_server_timing
from .fork_floor import FloorError, FloorServer, check_floor_answer
from .fork_setup import delete_instances
from .invoke_report import PHASES
from .invoke_variants import Sample, Variant, check_answer, run_group, summarize_group
from .scenarios import EVENT, EXPECTED_ANSWER
from .tools import ToolError

FORK = "ember fork boot"
PLAIN = "ember plain boot"
FLOOR = "raw floor (fork server)"
ISO_FLOOR = "isolated floor (fork server)"
TARGET_FLOOR_RATIO = 1.5  # fork p50 / floor p50, at most
TARGET_CRUN_RATIO = {"light": 15.0, "heavy": 60.0}  # crun p50 / fork p50, at least


class ForcedBootVariant(Variant):
    """`count` invocations that each force a new instance booted in `mode`; every answer must
    come from an instance not seen before, booted in that mode. The instances are deleted after
    the batch (the clock is stopped)."""

    def __init__(self, name: str, client: Client, function: str, mode: str, count: int):
        super().__init__(name)
        self.client, self.function, self.mode, self.count = client, function, mode, count
        self.expected = json.loads(EXPECTED_ANSWER)
        self.event = EVENT.encode()
        self.seen: set[str] = set()

    def measure(self) -> list[Sample]:
        out, made = [], []
        try:
            for _ in range(self.count):
                sample, instance = self.one()
                if instance:
                    made.append(instance)
                out.append(sample)
                if sample[1]:
                    break
        finally:
            try:
                delete_instances(self.client, made)
            except ToolError as e:
                out.append((float("nan"), f"cleanup: {e}", None))
        return out

    def one(self) -> tuple[Sample, str]:
        answer = self.client.invoke(self.function, self.event, boot=self.mode)
        problem = check_answer(answer, self.expected)
        timing = parse_server_timing(answer.headers.get("server-timing", ""))
        instance = answer.headers.get("x-ember-instance", "")
        mode = answer.headers.get("x-ember-boot-mode", "")
        reused = answer.headers.get("x-ember-instance-reused", "")
        if problem is None and (mode != self.mode or reused == "true" or not instance
                                or instance in self.seen):
            problem = (f"expected a fresh {self.mode}-booted instance, got {instance or '?'} "
                       f"(boot mode {mode or '?'}, reused: {reused or '?'})")
        self.seen.add(instance)
        return (answer.ms, problem, timing), instance


class FloorVariant(Variant):
    """`count` requests to the fork server, each answered by a fresh child."""

    def __init__(self, name: str, server: FloorServer | None, count: int,
                 error: str | None = None):
        super().__init__(name, error)
        self.server, self.count = server, count
        self.expected = json.loads(EXPECTED_ANSWER)

    def measure(self) -> list[Sample]:
        out = []
        for _ in range(self.count):
            try:
                ms, answer = self.server.request(EVENT.encode())
            except (FloorError, OSError) as e:
                return out + [(float("nan"), str(e), None)]
            out.append((ms, check_floor_answer(answer, self.expected), None))
        return out


def measure_handler(variants: list[Variant], rounds: int, warmups: int, kind: str,
                    verbose: bool) -> dict:
    """Runs the interleaved rounds; the handler's results: figures per variant, Server-Timing
    medians and means per ember variant, ratios and the targets."""
    measured, errors = run_group(variants, rounds, warmups, f"fork-boot {kind}", verbose)
    summary, server_timing = summarize_group(variants, measured, errors)
    phases = {}
    for name, st in server_timing.items():
        samples = st.pop("samples", [])
        phases[name] = {
            "n": len(samples),
            "median": {p: st.get(p) for p in PHASES},
            "mean": {p: _mean([s[p] for s in samples if p in s]) for p in PHASES + ["client"]},
        }
    return {"variants": summary, "phases": phases, "checks": checks(kind, summary)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _p50(summary: dict, name: str) -> float | None:
    return summary.get(name, {}).get("median_ms")


def checks(kind: str, summary: dict) -> dict:
    """The issue's targets for one handler: {name: {"value", "target", "met"}} (met is None
    when a figure is missing)."""
    fork, floor = _p50(summary, FORK), _p50(summary, FLOOR)
    out = {}
    ratio = fork / floor if fork and floor else None
    out["fork p50 / raw floor p50"] = {
        "value": ratio, "target": f"≤ {TARGET_FLOOR_RATIO}",
        "met": None if ratio is None else ratio <= TARGET_FLOOR_RATIO}
    # No targets: how far fork boot is from the isolation it must do, and what that costs.
    iso = _p50(summary, ISO_FLOOR)
    if iso is not None or ISO_FLOOR in summary:
        out["fork p50 / isolated floor p50"] = {
            "value": fork / iso if fork and iso else None, "target": "", "met": None}
        out["isolated floor p50 / raw floor p50"] = {
            "value": iso / floor if iso and floor else None, "target": "", "met": None}
    for peer in ("crun", "runc", "runsc", PLAIN):
        p = _p50(summary, peer)
        r = p / fork if p and fork else None
        entry = {"value": r, "target": "", "met": None}
        if peer == "crun":
            entry["target"] = f"≥ {TARGET_CRUN_RATIO[kind]:g}"
            entry["met"] = None if r is None else r >= TARGET_CRUN_RATIO[kind]
        out[f"{peer} p50 / fork p50"] = entry
    return out
