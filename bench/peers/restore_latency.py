"""Restore-to-answer latency (bench/restore_boot.py, part 1): what is compared, and the targets.

Variants of one handler, interleaved round by round by invoke_variants.run_group:

  * ember warm boot   `POST …/invoke?boot=warm`: a fresh instance restored from the function's
                      snapshot while the image is in the page cache (the benchmark reads the
                      file before each batch, untimed: a cold boot before it evicted it);
  * ember cold boot   `?boot=cold`: the daemon evicts the image from the page cache, then
                      restores (the recorded working set is read first); each instance is
                      deleted before the next cold boot, so none keeps image pages mapped;
  * ember fork boot   `?boot=fork`, from the function's live template;
  * ember plain boot  `?boot=plain`, initialized from nothing;
  * the peers of restore_peers.py: runsc restore, runc + CRIU restore, bare CRIU restore.

Every ember answer is checked to come from a fresh instance booted in the mode asked for; the
instances a batch made are deleted after it (untimed, waited for).
"""

from __future__ import annotations

from pathlib import Path

from .fork_latency import ForcedBootVariant
from .fork_setup import delete_instances
from .invoke_report import PHASES
from .invoke_variants import Sample, Variant, run_group, summarize_group
from .restore_peers import CRIU, RUNC, RUNSC
from .tools import ToolError

WARM = "ember warm boot"
COLD = "ember cold boot"
FORK = "ember fork boot"
PLAIN = "ember plain boot"
EMBER = (WARM, COLD, FORK, PLAIN)
PEERS = (RUNSC, RUNC, CRIU)
TARGET_WARM_OVER_FORK = 1.5  # warm p50 / fork p50, at most
TARGET_COLD_OVER_WARM = 5.0  # cold p50 / warm p50 (light handler), at most
TARGET_CRIU_OVER_WARM = 20.0  # bare CRIU p50 / warm p50, at least (where CRIU runs)
CACHE_CHUNK = 1 << 20


def read_into_page_cache(path: str) -> None:
    """Reads the whole file so the kernel caches it: what makes a snapshot resident again."""
    with open(path, "rb", buffering=0) as f:
        while f.read(CACHE_CHUNK):
            pass


class WarmBootVariant(ForcedBootVariant):
    """Forced warm boots; the snapshot is made resident first, outside the clock (the daemon
    refuses `?boot=warm` when under 90 % of the image is cached)."""

    def __init__(self, name, client, function, count, snapshot_path: str):
        super().__init__(name, client, function, "warm", count)
        self.snapshot_path = snapshot_path

    def measure(self) -> list[Sample]:
        try:
            read_into_page_cache(self.snapshot_path)
        except OSError as e:
            return [(float("nan"), f"read {self.snapshot_path}: {e}", None)]
        return super().measure()


class ColdBootVariant(ForcedBootVariant):
    """Forced cold boots, each instance deleted (untimed, waited for) before the next boot: the
    daemon's eviction cannot drop pages a live instance still maps, so a second cold boot beside
    the first would be partly warm."""

    def __init__(self, name, client, function, count):
        super().__init__(name, client, function, "cold", count)

    def measure(self) -> list[Sample]:
        out = []
        for _ in range(self.count):
            sample, instance = self.one()
            out.append(sample)
            try:
                delete_instances(self.client, [instance] if instance else [])
            except ToolError as e:
                out.append((float("nan"), f"cleanup: {e}", None))
            if out[-1][1]:
                break
        return out


def ember_variants(client, function: str, per_round: int, snapshot: dict | None,
                   daemon_error: str | None, snapshot_error: str | None) -> list[Variant]:
    """The four ember variants of one function (failed ones carry why)."""
    if daemon_error:
        return [Variant(n, f"ember daemon: {daemon_error}") for n in EMBER]
    out: list[Variant] = []
    if snapshot_error or not snapshot:
        why = f"no snapshot: {snapshot_error or 'not taken'}"
        out += [Variant(WARM, why), Variant(COLD, why)]
    else:
        out.append(WarmBootVariant(WARM, client, function, per_round, snapshot["path"]))
        out.append(ColdBootVariant(COLD, client, function, per_round))
    out.append(ForcedBootVariant(FORK, client, function, "fork", per_round))
    out.append(ForcedBootVariant(PLAIN, client, function, "plain", 1))
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def measure_handler(variants: list[Variant], rounds: int, warmups: int, kind: str,
                    verbose: bool) -> dict:
    """Runs the interleaved rounds: figures per variant, Server-Timing phases, the targets."""
    measured, errors = run_group(variants, rounds, warmups, f"restore {kind}", verbose)
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


def _p50(summary: dict, name: str) -> float | None:
    v = summary.get(name, {}).get("median_ms")
    return v if isinstance(v, (int, float)) and v == v else None


def _why_missing(summary: dict, *names: str) -> str:
    for n in names:
        if "error" in summary.get(n, {}):
            return f"{n} failed: {summary[n]['error']}"
        if n not in summary:
            return f"{n} not measured"
    return "no figure"


def checks(kind: str, summary: dict) -> dict:
    """The issue's targets, and the ratio of every other variant to warm and cold boot:
    {name: {"value", "target", "met", "why"}}; met is None when a figure is missing (why says
    which), value is a ratio of medians."""
    warm, cold, fork = _p50(summary, WARM), _p50(summary, COLD), _p50(summary, FORK)
    out: dict = {}

    def add(name, num, den, target="", met_fn=None, names=()):
        value = num / den if num and den else None
        entry = {"value": value, "target": target, "met": None}
        if value is not None and met_fn is not None:
            entry["met"] = met_fn(value)
        elif value is None:
            entry["why"] = _why_missing(summary, *names)
        out[name] = entry

    add("warm p50 / fork p50", warm, fork, f"≤ {TARGET_WARM_OVER_FORK:g}",
        lambda v: v <= TARGET_WARM_OVER_FORK, (WARM, FORK))
    if kind == "light":
        add("cold p50 / warm p50", cold, warm, f"≤ {TARGET_COLD_OVER_WARM:g}",
            lambda v: v <= TARGET_COLD_OVER_WARM, (COLD, WARM))
    else:
        add("cold p50 / warm p50", cold, warm, names=(COLD, WARM))
    add(f"{CRIU} p50 / warm p50", _p50(summary, CRIU), warm, f"≥ {TARGET_CRIU_OVER_WARM:g}",
        lambda v: v >= TARGET_CRIU_OVER_WARM, (CRIU, WARM))
    for peer in (RUNSC, RUNC, PLAIN):
        add(f"{peer} p50 / warm p50", _p50(summary, peer), warm, names=(peer, WARM))
        add(f"{peer} p50 / cold p50", _p50(summary, peer), cold, names=(peer, COLD))
    add(f"{CRIU} p50 / cold p50", _p50(summary, CRIU), cold, names=(CRIU, COLD))
    return out


def snapshot_record(client, function: str) -> dict:
    """GET /v1/functions/NAME's "snapshot" (state, path, size, resident, working set)."""
    answer = client.request("GET", f"/v1/functions/{function}")
    if answer.status != 200:
        return {"error": answer.error_text()}
    return (answer.json() or {}).get("snapshot") or {"error": "no snapshot"}


def take_snapshot(client, function: str) -> dict:
    """POST /v1/functions/NAME/snapshot: the snapshot record once it is written and opened.
    Raises ValueError with the daemon's answer when it failed."""
    answer = client.request("POST", f"/v1/functions/{function}/snapshot", b"")
    if answer.status != 200:
        raise ValueError(f"POST /v1/functions/{function}/snapshot: {answer.error_text()}")
    record = answer.json() or {}
    record = record.get("snapshot", record)
    if record.get("state") != "ready" or not record.get("path") or not Path(
            record["path"]).exists():
        raise ValueError(f"snapshot of {function} not ready: {str(record)[:300]}")
    return record
