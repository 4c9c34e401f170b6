"""The benchmark suite as one thing: find each benchmark's newest result, pull its headline figures.

Each benchmark script writes its own JSON (bench/results/<kind>-<timestamp>.json) and its own
docs section; nothing looked at them together. bench/plots.py and bench/report.py both start
here, so the plots and the summary table always describe the same files. Every reader tolerates
a missing kind or a missing field (an old result, a failed peer): a figure it cannot find is
None and the caller says so, instead of the whole report failing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .restore_report import suite_rows as restore_rows

KINDS = ("run-vs-peers", "invoke-latency", "fork-boot", "restore", "micro")
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def kind_of(path: Path, data: dict) -> str | None:
    """The benchmark a result file belongs to: its own 'benchmark' field, else its file name.

    ember-micro-bench writes Google Benchmark's JSON, which has no 'benchmark' field."""
    if isinstance(data.get("benchmark"), str) and data["benchmark"] in KINDS:
        return data["benchmark"]
    if isinstance(data.get("benchmarks"), list):
        return "micro"
    for kind in KINDS:
        if path.name.startswith(kind + "-"):
            return kind
    return None


def newest(results_dir: Path, kind: str) -> Path | None:
    """The newest <kind>-<timestamp>.json; the timestamp sorts as text (YYYYmmdd-HHMMSS)."""
    files = sorted(p for p in results_dir.glob(f"{kind}-*.json")
                   if p.name[len(kind) + 1:len(kind) + 2].isdigit())
    return files[-1] if files else None


def load(paths: list[Path] | None = None, results_dir: Path = RESULTS_DIR) -> dict:
    """{kind: (path, data)}: the files given (by their kind), else the newest of each kind.

    A file that cannot be read or parsed leaves its kind out, like a benchmark never run: the
    caller names what is missing rather than failing on it."""
    found: dict = {}
    if paths:
        candidates = [Path(p) for p in paths]
    else:
        candidates = [p for k in KINDS if (p := newest(results_dir, k)) is not None]
    for p in candidates:
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        kind = kind_of(p, data) if isinstance(data, dict) else None
        if kind is not None:
            found[kind] = (p, data)  # a later file of the same kind wins
    return found


def machine(loaded: dict) -> dict | None:
    """The machine record of the first result that has one (fork-boot first: the longest run)."""
    for kind in ("fork-boot", "restore", "invoke-latency", "run-vs-peers"):
        if kind in loaded and isinstance(loaded[kind][1].get("machine"), dict):
            return loaded[kind][1]["machine"]
    return None


def machine_line(m: dict | None) -> str:
    """One line naming the machine, for plot titles and the summary."""
    if not m:
        return "machine unknown"
    parts = [m.get("cpu_model"), f"{m['cpus']} CPUs" if "cpus" in m else None,
             f"{m['memory_gib']} GiB" if "memory_gib" in m else None,
             f"kernel {m['kernel']}" if "kernel" in m else None, m.get("os"),
             f"cgroups {m['cgroups']}" if "cgroups" in m else None]
    return ", ".join(str(p) for p in parts if p)


def timestamp(data: dict) -> str:
    return str(data.get("timestamp") or data.get("context", {}).get("date") or "unknown time")


def stat(entry: dict | None, key: str = "median_ms") -> float | None:
    """A number from a tool's entry, None when the tool failed or the field is absent/NaN."""
    if not isinstance(entry, dict) or "error" in entry:
        return None
    v = entry.get(key)
    if not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def _row(figure: str, value: str, target: str, met: bool | None) -> dict:
    return {"figure": figure, "value": value, "target": target, "met": met}


def _fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def fork_rows(data: dict) -> list[dict]:
    """fork p50 against the raw floor, crun against fork, per handler; density; burst."""
    rows = []
    for handler, lat in (data.get("latency") or {}).items():
        variants = lat.get("variants", {})
        fork = stat(variants.get("ember fork boot"))
        checks = lat.get("checks", {})
        floor_c = checks.get("fork p50 / raw floor p50", {})
        rows.append(_row(f"fork p50 / raw floor p50 ({handler})",
                         f"{_fmt(fork, ' ms')} / {_fmt(stat(variants.get('raw floor (fork server)')), ' ms')}"
                         f" = {_fmt(floor_c.get('value'), '×')}",
                         floor_c.get("target", "≤ 1.5"), floor_c.get("met")))
        iso_c = checks.get("fork p50 / isolated floor p50")
        if iso_c is not None:  # no target: the floor with the namespaces issue 4 mandates
            iso = stat(variants.get("isolated floor (fork server)"))
            rows.append(_row(f"fork p50 / isolated floor p50 ({handler})",
                             f"{_fmt(fork, ' ms')} / {_fmt(iso, ' ms')}"
                             f" = {_fmt(iso_c.get('value'), '×')}", "—", None))
        crun_c = checks.get("crun p50 / fork p50", {})
        rows.append(_row(f"crun p50 / fork p50 ({handler})",
                         f"{_fmt(stat(variants.get('crun')), ' ms')} / {_fmt(fork, ' ms')}"
                         f" = {_fmt(crun_c.get('value'), '×', 1)}",
                         crun_c.get("target", ""), crun_c.get("met")))
    dens = (data.get("density") or {}).get("fork")
    if isinstance(dens, dict):
        pss = stat(dens.get("pss_kib"), "mean")
        started, requested = dens.get("started"), dens.get("requested")
        rows.append(_row("density: fork instances alive", f"{started} of {requested}",
                         "10,000", None if started is None else started >= 10000))
        rows.append(_row("density: PSS per fork instance (mean)",
                         _fmt(None if pss is None else pss / 1024, " MiB"), "≤ 1 MiB",
                         None if pss is None else pss <= 1024))
    burst = data.get("burst")
    for b in (burst if isinstance(burst, list) else [burst] if isinstance(burst, dict) else []):
        rate, p99 = b.get("boots_per_s"), stat(b.get("boot_ms"), "p99")
        n = b.get("requested", "?")
        rows.append(_row(f"burst of {n}: boots/s", _fmt(rate, "", 0), "≥ 1,000",
                         None if rate is None else rate >= 1000))
        rows.append(_row(f"burst of {n}: p99 boot", _fmt(p99, " ms"), "≤ 10 ms",
                         None if p99 is None else p99 <= 10))
        floor = (b.get("floor") or {}).get("forks_per_s")
        if floor:
            rows.append(_row(f"burst of {n}: raw fork floor forks/s (ember / floor)",
                             f"{floor:.0f} ({_fmt(rate and rate / floor, '×')})", "—", None))
        iso = (b.get("isolated_floor") or {}).get("forks_per_s")
        if iso:
            rows.append(_row(f"burst of {n}: isolated fork floor forks/s (ember / floor)",
                             f"{iso:.0f} ({_fmt(rate and rate / iso, '×')})", "—", None))
    return rows


def run_rows(data: dict) -> list[dict]:
    """`ember run` with the light handler against the unshare+chroot floor (+1 ms), the floor
    with the mandated rootfs and cgroup (unshare+overlay+cgroup, when measured), the floor with
    all the mandated kernel work (full mandate (C), when measured) and crun."""
    light = (data.get("scenarios") or {}).get("python-light", {})
    ember, floor, crun = (stat(light.get(t)) for t in ("ember", "unshare+chroot", "crun"))
    met = None if None in (ember, floor) else ember <= floor + 1
    rows = [_row("ember run p50 vs unshare+chroot p50 (light)",
                 f"{_fmt(ember, ' ms')} vs {_fmt(floor, ' ms')}", "≤ floor + 1 ms", met)]
    # No targets of their own: the floor with the rootfs and cgroup issue 2 mandates, and the one
    # with all the kernel work it mandates, in one C program (the gap to it is ember's own).
    for tool, label in (("unshare+overlay+cgroup", "floor with the mandated rootfs and cgroup"),
                        ("full mandate (C)", "full mandate floor (C)")):
        if tool not in light:
            continue
        other = stat(light.get(tool))
        gap = None if None in (ember, other) else ember - other
        rows.append(_row(f"ember run p50 − {label} (light)",
                         f"{_fmt(ember, ' ms')} − {_fmt(other, ' ms')} = "
                         f"{'n/a' if gap is None else f'{gap:+.2f} ms'}", "—", None))
    rows.append(_row("ember run p50 vs crun p50 (light)",
                     f"{_fmt(ember, ' ms')} vs {_fmt(crun, ' ms')}", "< crun",
                     None if None in (ember, crun) else ember < crun))
    return rows


def invoke_rows(data: dict) -> list[dict]:
    """Warm and plain-boot invocation medians per handler (no target: the reference figures)."""
    rows = []
    for handler, fn in (data.get("functions") or {}).items():
        v = fn.get("variants", {})
        rows.append(_row(f"invoke p50 warm / plain boot ({handler})",
                         f"{_fmt(stat(v.get('ember invoke, warm')), ' ms')} / "
                         f"{_fmt(stat(v.get('ember invoke, plain boot')), ' ms')}", "", None))
    return rows


def micro_figures(data: dict) -> dict:
    """{benchmark name: 'real_time unit'} from Google Benchmark's JSON (aggregates skipped)."""
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" or "real_time" not in b:
            continue
        out[b.get("name", "?")] = f"{b['real_time']:.3g} {b.get('time_unit', 'ns')}"
    return out


def summary(loaded: dict) -> dict:
    """The combined record: machine, and per kind the file, its timestamp and key figures."""
    out: dict = {"machine": machine(loaded), "machine_line": machine_line(machine(loaded)),
                 "benchmarks": {}, "missing": [k for k in KINDS if k not in loaded]}
    rows_of = {"fork-boot": fork_rows, "run-vs-peers": run_rows, "invoke-latency": invoke_rows,
               "restore": restore_rows}
    for kind in (k for k in KINDS if k in loaded):  # a fixed order, whatever the file order
        path, data = loaded[kind]
        rec: dict = {"path": str(path), "timestamp": timestamp(data), "mode": data.get("mode")}
        if kind == "micro":
            rec["figures"] = micro_figures(data)
        else:
            rec["rows"] = rows_of[kind](data)
        out["benchmarks"][kind] = rec
    return out
