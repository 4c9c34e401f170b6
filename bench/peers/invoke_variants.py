"""What bench/invoke_latency.py compares, and how: a Variant gives one measurement (ms, what
was wrong, the daemon's Server-Timing phases); run_group interleaves variants round by round.
"""

from __future__ import annotations

import json
import sys

from .daemon import Answer, Client, parse_server_timing
from .invoke_report import PHASES
from .measure import run_tool_once
from .scenarios import EVENT, EXPECTED_ANSWER
from .stats import median, summarize
from .tools import Tool, ToolError

Sample = tuple[float, "str | None", "dict | None"]


class Variant:
    """A variant that cannot run carries its error and is never measured."""

    def __init__(self, name: str, error: str | None = None):
        self.name = name
        self.error = error

    def measure(self) -> list[Sample]:
        raise NotImplementedError


class PeerVariant(Variant):
    """One cold start of the scenario's command under a tool (run_vs_peers.py's measurement)."""

    def __init__(self, tool: Tool, scenario: dict, ids):
        super().__init__(tool.name, tool.error)
        self.tool, self.scenario, self.ids = tool, scenario, ids

    def measure(self):
        ms, problem = run_tool_once(self.tool, self.scenario["argv"], self.scenario["expect"],
                                    next(self.ids))
        return [(ms, problem, None)]


def check_answer(answer: Answer, expected) -> str | None:
    if answer.status != 200:
        return answer.error_text()
    try:
        got = answer.json()
    except ValueError:
        return f"not JSON: {answer.body[:200]!r}"
    if got != expected:
        return f"unexpected answer {answer.body[:200]!r}"
    return None


class InvokeVariant(Variant):
    """Invocations of one function over the client's keep-alive connection.

    warm (boot=None): `count` invocations back to back, each checked to have reused the idle
    instance the deploy left. plain (boot="plain"): one forced plain boot, checked to be a new
    instance, which is deleted (and waited for) after the clock has stopped, so that the next
    variant finds the same daemon state and the teardown overlaps nothing that is timed.
    """

    def __init__(self, name: str, client: Client, function: str, boot: str | None,
                 warm_instance: str, count: int = 1):
        super().__init__(name)
        self.client, self.function, self.boot = client, function, boot
        self.warm_instance, self.count = warm_instance, count
        self.expected = json.loads(EXPECTED_ANSWER)
        self.event = EVENT.encode()

    def measure(self):
        return [self.one() for _ in range(self.count)]

    def one(self) -> Sample:
        answer = self.client.invoke(self.function, self.event, boot=self.boot)
        problem = check_answer(answer, self.expected)
        timing = parse_server_timing(answer.headers.get("server-timing", ""))
        instance = answer.headers.get("x-ember-instance", "")
        reused = answer.headers.get("x-ember-instance-reused", "")
        mode = answer.headers.get("x-ember-boot-mode", "")
        if problem is None and self.boot is None:
            if instance != self.warm_instance or reused != "true":
                problem = (f"expected the warm instance {self.warm_instance} to be reused, got "
                           f"{instance or '?'} (reused: {reused or '?'})")
        elif problem is None and self.boot == "plain":
            if instance == self.warm_instance or reused == "true" or mode != "plain":
                problem = (f"expected a freshly plain-booted instance, got {instance or '?'} "
                           f"(boot mode {mode or '?'}, reused: {reused or '?'})")
        if self.boot == "plain" and instance and instance != self.warm_instance:
            try:
                self.client.delete_instance(instance)
            except ToolError as e:
                problem = problem or str(e)
        return answer.ms, problem, timing


def run_group(variants: list[Variant], iterations: int, warmups: int, label: str,
              verbose: bool) -> tuple[dict, dict]:
    """Warm-up rounds (discarded; a variant failing there is out), then `iterations` rounds of
    every live variant, each round starting one variant later so no variant always follows the
    same neighbour. Returns ({"samples", "timings"} per variant name, errors per name)."""
    live = [v for v in variants if v.error is None]
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    timings: dict[str, list[dict]] = {v.name: [] for v in variants}
    errors: dict[str, str] = {}

    def once(v: Variant, where: str, keep: bool) -> None:
        for ms, problem, timing in v.measure():
            if problem:
                errors[v.name] = f"{where}: {problem}"
                return
            if keep:
                samples[v.name].append(ms)
                if timing:
                    timings[v.name].append(dict(timing, client=ms))

    for _ in range(warmups):
        for v in live:
            if v.name not in errors:
                once(v, "warm-up", False)
    live = [v for v in live if v.name not in errors]
    for i in range(iterations):
        k = i % len(live) if live else 0
        for v in live[k:] + live[:k]:
            if v.name not in errors:
                once(v, f"round {i}", True)
        if verbose:
            print(f"  {label}: round {i + 1}/{iterations}", file=sys.stderr, end="\r")
    if verbose:
        print(file=sys.stderr)
    return {"samples": samples, "timings": timings}, errors


def summarize_group(variants: list[Variant], measured: dict, errors: dict) -> tuple[dict, dict]:
    """(figures per variant, Server-Timing medians per variant that has them)."""
    out, server_timing = {}, {}
    for v in variants:
        if v.error is not None:
            out[v.name] = {"error": v.error, "n": 0}
            continue
        samples = measured["samples"][v.name]
        if v.name in errors or not samples:
            out[v.name] = {"error": errors.get(v.name, "no samples"), "n": len(samples)}
            continue
        out[v.name] = summarize(samples)
        phases = measured["timings"][v.name]
        if phases:
            st = {p: median([t[p] for t in phases if p in t]) for p in PHASES}
            st["client_minus_total_ms"] = median([t["client"] - t["total"] for t in phases
                                                  if "total" in t])
            st["samples"] = phases
            server_timing[v.name] = st
    return out, server_timing
