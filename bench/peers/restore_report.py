"""The tables of bench/restore_boot.py, its section of docs/benchmarks.md, and its rows in the
suite summary (bench/report.py).

The section between BEGIN_MARK and END_MARK is rewritten by --write-docs. When the markers are
not in the file yet, the whole section (what is measured, how to run it, the markers) is
appended once, so the docs are only ever changed by this writer.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .invoke_report import PHASES, fmt_small
from .report import _one_line
from .restore_latency import COLD, CRIU, FORK, WARM

BEGIN_MARK = "<!-- restore:begin -->"
END_MARK = "<!-- restore:end -->"
MIB = 1024.0
TARGET_CHECKS = ("warm p50 / fork p50", "cold p50 / warm p50", f"{CRIU} p50 / warm p50")

SECTION = f"""
## Restore (cold and warm boot)

`bench/restore_boot.py` (`run.sh --only restore`, and a step of the full run) measures
initialization-less booting from a snapshot through a private `ember daemon` (own data and run
dirs, cgroup pool `ember-bench-restore`). The light and heavy handlers are deployed with a
fork-boot template, and each one's snapshot is taken with `POST /v1/functions/NAME/snapshot`
(what `ember snapshot NAME` does).

* **Latency, restore → answer.** 2 warm-up rounds, then 40 interleaved rounds (15 with
  `--quick`), each starting one variant later than the previous, of: 5 (3) `?boot=warm`
  invocations (the image is read into the page cache before each batch, untimed, since a cold
  boot evicted it), 5 (3) `?boot=cold` (the daemon evicts the image with
  `POSIX_FADV_DONTNEED`, then restores; the recorded working set is read first; each cold
  instance is deleted before the next cold boot, as pages a live instance maps stay cached),
  5 (3) `?boot=fork`, one `?boot=plain` — every answer checked to come from a fresh instance booted
  in that mode, client wall time over a connection made beforehand — and one restore each by
  the peers: **runsc restore** (gVisor, ptrace platform, no network; `runsc checkpoint` once,
  then `runsc restore` of a new container per sample), **runc + CRIU** (`runc checkpoint` /
  `runc restore`) and **bare CRIU** (`criu dump` / `criu restore` of the host's python3.11,
  no namespaces). The peers' program imports what the handler imports, then waits for a file
  (0.5 ms sleep loop) in a host directory bind-mounted at `/mnt`; it is checkpointed while it
  waits, and every restore finds the file at once, runs the handler, writes its answer and
  exits: a sample is restore command start → the answer file complete (inotify), as ember's
  ends with its answer; the command's exit (container torn down) is shown beside it. Debian's
  criu 3.17 cannot run on this kernel (it expects `[vvar]` and `[vdso]` to be adjacent); the
  CRIU peers are then reported failed with CRIU's own error, and `-- --criu PATH` points them at
  another build. Targets: warm p50 ≤ 1.5 × fork p50; cold p50 ≤ 5 × warm p50 (light
  handler); bare CRIU p50 ≥ 20 × warm p50 where CRIU can run.
* **Memory.** 200 (50) idle warm-restored instances of the light handler, as many fork-booted
  and 20 (10) plain-boot ones, started by forced invocations over 4 connections: PSS per
  instance (sum of `Pss` in `/proc/PID/smaps_rollup` over the instance's processes; the
  image's page-cache pages count by their share) and the drop of `MemAvailable` per instance.

Reproduce: `bash bench/run.sh build/bin/ember --only restore [--quick] [--write-docs]`.

### Results

Rewritten by `bench/run.sh EMBER --only restore --write-docs` (or `restore_boot.py
--write-docs`).

{BEGIN_MARK}
{END_MARK}
"""


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else None


def _ratio(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}×" if v >= 100 else (f"{v:.1f}×" if v >= 10 else f"{v:.2f}×")


def _mib(kib) -> str:
    v = _num(kib)
    return "–" if v is None else f"{v / MIB:.2f}"


def _met(c: dict) -> str:
    if c.get("met") is None:
        return f"not checked ({_one_line(c.get('why', 'no figure'), 160)})"
    return "met" if c["met"] else "NOT met"


def latency_lines(results: dict) -> list[str]:
    lines = []
    for kind, g in results.get("latency", {}).items():
        v = g["variants"]
        warm = _num(v.get(WARM, {}).get("median_ms"))
        cold = _num(v.get(COLD, {}).get("median_ms"))
        lines += [f"**Restore → answer, {g['title']}** (function `{g['function']}`) — ms", "",
                  "| variant | n | min | p50 | p99 | p50 / warm p50 | p50 / cold p50 | "
                  "p50 to the command's exit |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in v.items():
            if "error" in r:
                lines.append(f"| {name} | {r.get('n', 0)} | – | – | – | failed: "
                             f"{_one_line(r['error'], 220)} | | |")
                continue
            p50 = r["median_ms"]
            lines.append(f"| {name} | {r['n']} | {fmt_small(r['min_ms'])} | {fmt_small(p50)} | "
                         f"{fmt_small(r['p99_ms'])} | {_ratio(p50 / warm if warm else None)} | "
                         f"{_ratio(p50 / cold if cold else None)} | "
                         f"{fmt_small(r['exit']['median_ms']) if 'exit' in r else ''} |")
        lines.append("")
        for what in TARGET_CHECKS:
            c = g.get("checks", {}).get(what)
            if c is None:
                continue
            target = f" (target {c['target']}: {_met(c)})" if c.get("target") else ""
            lines.append(f"* {what}: {_ratio(c.get('value'))}{target}")
        snap = g.get("snapshot") or {}
        if snap.get("size_bytes"):
            lines.append(f"* snapshot: {snap['size_bytes'] / 2**20:.1f} MiB, "
                         f"{snap.get('working_set_pages', '?')} working-set pages")
        lines.append("")
    rows = [(kind, name, p) for kind, g in results.get("latency", {}).items()
            for name, p in g.get("phases", {}).items() if p.get("n")]
    if rows:
        lines += ["Server-Timing phases, **mean** ms (median in brackets; for warm and cold boot "
                  "`sandbox` is the sandbox and ember-restore up to its report, `init` the "
                  "restored agent's after-fork hooks):", "",
                  "| handler | boot | n | " + " | ".join(PHASES) + " | client |",
                  "| --- | --- | ---: |" + " ---: |" * (len(PHASES) + 1)]
        for kind, name, p in rows:
            cells = [f"{fmt_small(_nan(p['mean'].get(ph)))} "
                     f"({fmt_small(_nan(p['median'].get(ph)))})" for ph in PHASES]
            lines.append(f"| {kind} | {name.replace('ember ', '')} | {p['n']} | "
                         + " | ".join(cells) + f" | {fmt_small(_nan(p['mean'].get('client')))} |")
        lines.append("")
    return lines


def _nan(v):
    return float("nan") if v is None else v


def density_lines(d: dict) -> list[str]:
    if not d:
        return []
    if "error" in d:
        return [f"**Memory of idle instances**: not measured: {_one_line(d['error'])}", ""]
    lines = [f"**Memory of idle instances** of `{d.get('function', '?')}` (MiB per instance; "
             "PSS over the instance's processes, MemAvailable drop over the run / instances):",
             "", "| boot mode | requested | alive | PSS mean | PSS median | PSS p99 | "
             "private mean | MemAvailable drop |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, key in (("ember warm boot", "warm"), ("ember fork boot", "fork"),
                       ("ember plain boot", "plain")):
        r = d.get(key)
        if not r:
            continue
        if "error" in r:
            lines.append(f"| {label} | {r.get('requested', '–')} | – | failed: "
                         f"{_one_line(r['error'], 200)} | | | | |")
            continue
        pss, priv = r.get("pss_kib", {}), r.get("private_kib", {})
        # No instance alive: the MemAvailable drop divided by none is no figure per instance.
        drop = r.get("memavailable_drop_kib_per_instance") if r.get("started") else None
        lines.append(f"| {label} | {r.get('requested')} | {r.get('started')} | "
                     f"{_mib(pss.get('mean'))} | {_mib(pss.get('median'))} | "
                     f"{_mib(pss.get('p99'))} | {_mib(priv.get('mean'))} | "
                     f"{_mib(drop)} |")
    lines.append("")
    for key in ("warm", "fork", "plain"):
        r = d.get(key) or {}
        if r.get("stopped"):
            lines.append(f"* {key}: stopped early: {_one_line(r['stopped'])}")
    lines.append("")
    return lines


def markdown(results: dict) -> str:
    m = results.get("machine", {})
    lines = [
        f"Run {results['timestamp']} ({results['mode']}: {results['warmups']} warm-up + "
        f"{results['rounds']} interleaved rounds, {results['per_round']} warm, cold and fork "
        f"boots per round). Machine: {m.get('os', '?')}, kernel {m.get('kernel', '?')}, "
        f"{m.get('cpus', '?')} × {m.get('cpu_model', '?')}, {m.get('memory_gib', '?')} GiB, "
        f"cgroups {m.get('cgroups', '?')}; load "
        f"average {_nan(m.get('loadavg_at_start')):.2f} at start, "
        f"{_nan(m.get('loadavg_at_end')):.2f} at end.", ""]
    versions = "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items())
    if versions:
        lines += [f"Versions: {versions}.", ""]
    lines += latency_lines(results)
    lines += density_lines(results.get("density", {}))
    if results.get("tool_errors"):
        lines += ["Could not run:", ""]
        lines += [f"* {n}: {_one_line(e, 400)}" for n, e in results["tool_errors"].items()]
        lines.append("")
    if results.get("warnings"):
        lines += ["Warnings:", ""] + [f"* {_one_line(w)}" for w in results["warnings"]] + [""]
    return "\n".join(lines)


def write_docs(table: str, path: Path) -> None:
    text = path.read_text()
    if BEGIN_MARK not in text or END_MARK not in text:
        text = text.rstrip("\n") + "\n" + SECTION
    b, e = text.find(BEGIN_MARK), text.find(END_MARK)
    new = text[: b + len(BEGIN_MARK)] + "\n" + table.rstrip("\n") + "\n" + text[e:]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


# ---- the suite summary (bench/report.py) -----------------------------------------------------


def _row(figure: str, value: str, target: str, met: bool | None) -> dict:
    return {"figure": figure, "value": value, "target": target, "met": met}


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


def suite_rows(data: dict) -> list[dict]:
    """The headline figures of a restore result: per handler the warm/cold/fork medians and the
    three targets (a CRIU that could not run is a row with its reason, met unknown); PSS per
    idle warm-restored instance against fork and plain boot."""
    rows = []
    for handler, lat in (data.get("latency") or {}).items():
        v = lat.get("variants", {})

        def p50(name):
            return _num((v.get(name) or {}).get("median_ms")) if "error" not in (
                v.get(name) or {}) else None

        rows.append(_row(f"restore p50 warm / cold / fork ({handler})",
                         f"{_ms(p50(WARM))} / {_ms(p50(COLD))} / {_ms(p50(FORK))}", "", None))
        for what in TARGET_CHECKS:
            c = (lat.get("checks") or {}).get(what)
            if not c or not c.get("target"):
                continue
            value = _ratio(c.get("value"))
            if c.get("value") is None:
                value = f"n/a: {_one_line(c.get('why', 'no figure'), 120)}"
            rows.append(_row(f"{what} ({handler})", value, c["target"], c.get("met")))
    dens = data.get("density") or {}
    pss = {k: _num(((dens.get(k) or {}).get("pss_kib") or {}).get("mean"))
           for k in ("warm", "fork", "plain")}
    if any(x is not None for x in pss.values()):
        cells = " / ".join("n/a" if x is None else f"{x / MIB:.2f} MiB"
                           for x in pss.values())
        alive = (dens.get("warm") or {}).get("started", "?")
        rows.append(_row(f"PSS per idle instance, warm / fork / plain ({alive} warm)", cells, "",
                         None))
    return rows

