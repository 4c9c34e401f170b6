"""bench/engine_latency.py's figures: ember-engine-bench's samples summarized per handler and boot
mode, set beside the same boot modes through the daemon, the markdown tables and the suite rows.

The daemon-path figures come from the same run (peers/engine_daemon.py) or, with
--daemon-path newest, from the newest restore result (bench/results/restore-*.json,
bench/restore_boot.py): the same light and heavy handlers, each invocation a forced boot of a
fresh instance in that mode, as ember-engine-bench does. The ratio engine / daemon shows what
HTTP, the unix socket and the client cost per invocation.
"""

from __future__ import annotations

import json
from pathlib import Path

from .restore_latency import COLD, FORK, PLAIN, WARM
from .stats import median, summarize
from .suite import newest, stat

BEGIN_MARK = "<!-- engine-latency:begin -->"
END_MARK = "<!-- engine-latency:end -->"
MODES = ("warm", "cold", "fork", "plain")  # the order of the tables
DAEMON_VARIANT = {"warm": WARM, "cold": COLD, "fork": FORK, "plain": PLAIN}
PHASES = ("sandbox", "init", "queue", "handler", "total")


def summarize_engine(raw: dict, kind_of: dict[str, str]) -> dict:
    """{kind: {"function", "deploy_ms", "modes": {mode: summary | {"error", "n"}},
    "phases": {mode: {phase: median ms}}}} from ember-engine-bench's JSON; kind_of maps a
    function's name to its kind (light, heavy)."""
    out: dict = {}
    for fn in raw.get("functions", []):
        kind = kind_of.get(fn.get("name"), fn.get("name"))
        modes, phases = {}, {}
        for mode, m in (fn.get("modes") or {}).items():
            good = [s for s in m.get("samples", []) if not s.get("error")]
            if m.get("error") and not good:
                modes[mode] = {"error": m["error"], "n": 0}
                continue
            modes[mode] = summarize([s["ms"] for s in good]) if good else {
                "error": "no samples", "n": 0}
            if m.get("error"):
                modes[mode]["stopped_by"] = m["error"]
            phases[mode] = {p: median([s["engine_ms"][p] for s in good]) for p in PHASES}
        out[kind] = {"function": fn.get("name"), "deploy_ms": fn.get("deploy_ms"),
                     "modes": modes, "phases": phases}
    return out


def daemon_reference(results_dir: Path, path: Path | None = None) -> dict:
    """The daemon-path medians per kind and mode, from `path` or the newest restore result:
    {"file", "timestamp", "kinds": {kind: {mode: median ms | None}}} ({"error"} if none)."""
    path = path or newest(results_dir, "restore")
    if path is None:
        return {"error": f"no restore-*.json in {results_dir} (run bench/restore_boot.py)"}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        return {"error": f"{path}: {e}"}
    kinds = {}
    for kind, lat in (data.get("latency") or {}).items():
        v = lat.get("variants", {})
        kinds[kind] = {mode: stat(v.get(name)) for mode, name in DAEMON_VARIANT.items()}
    return {"file": Path(path).name, "timestamp": data.get("timestamp"), "kinds": kinds}


def ratios(engine: dict, reference: dict) -> dict:
    """{kind: {mode: {"engine", "daemon", "ratio", "api_ms", "in_request_api_ms"}}}: engine p50 /
    daemon p50, their difference (ms), and, measured in this run, the client's time minus the
    daemon's Server-Timing total in the same requests; None where a figure is missing."""
    out: dict = {}
    for kind, e in engine.items():
        ref = (reference.get("kinds") or {}).get(kind, {})
        for mode in MODES:
            ep, dp = stat(e["modes"].get(mode)), ref.get(mode)
            ok = ep is not None and dp is not None and dp > 0
            inreq = ((reference.get("in_request") or {}).get(kind) or {}).get(mode)
            out.setdefault(kind, {})[mode] = {
                "engine": ep, "daemon": dp, "ratio": ep / dp if ok else None,
                "api_ms": dp - ep if ok else None, "in_request_api_ms": inreq}
    return out


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def markdown(results: dict) -> str:
    """A table per handler: mode, n, min, p50, p99 through the engine, the daemon-path p50 and
    the ratio; the engine's own phase medians; the machine and load."""
    m = results.get("machine") or {}
    ref = results.get("daemon_reference") or {}
    lines = [f"Run {results.get('timestamp', '?')} ({results.get('mode', '?')}: "
             f"{results.get('rounds', '?')} rounds after {results.get('warmups', '?')} warm-ups,"
             " modes interleaved), "
             f"load average {_load(m.get('loadavg_at_start'))} → "
             f"{_load(m.get('loadavg_at_end'))}, "
             f"{m.get('cpus', '?')} CPUs, kernel {m.get('kernel', '?')}, "
             f"cgroups {m.get('cgroups', '?')}.", ""]
    if "error" in ref:
        lines += [f"Through the daemon: no figures ({ref['error']}).", ""]
    elif ref.get("source") == "this run":
        lines += ["Through the daemon: measured in this run, right before the engine path (a "
                  "private `ember daemon` with the same handlers, the same forced boots, one "
                  "per mode per round).", ""]
    else:
        lines += [f"Through the daemon: the medians of `{ref.get('file')}` "
                  f"({ref.get('timestamp')}, bench/restore_boot.py), not of this run.", ""]
    for kind, e in (results.get("engine") or {}).items():
        lines += [f"**{kind} handler** (`{e.get('function')}`)", "",
                  "| boot mode | n | min ms | p50 ms | p99 ms | daemon p50 ms | "
                  "engine / daemon | daemon − engine ms | HTTP + client ms |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        r = (results.get("ratios") or {}).get(kind, {})
        for mode in MODES:
            s = e["modes"].get(mode)
            if s is None:
                continue
            x = r.get(mode, {})
            ratio = "—" if x.get("ratio") is None else f"{x['ratio']:.2f}"
            if "error" in s:
                lines.append(f"| {mode} | 0 | failed: {_one_line(s['error'])} | | | "
                             f"{_ms(x.get('daemon'))} | — | — | "
                             f"{_ms(x.get('in_request_api_ms'))} |")
                continue
            lines.append(f"| {mode} | {s['n']} | {_ms(s['min_ms'])} | {_ms(s['median_ms'])} | "
                         f"{_ms(s['p99_ms'])} | {_ms(x.get('daemon'))} | {ratio} | "
                         f"{_ms(x.get('api_ms'))} | {_ms(x.get('in_request_api_ms'))} |")
        lines += ["", "HTTP + client: in the daemon-path requests themselves, the client's "
                  "time minus the daemon's Server-Timing total (means).", "",
                  "Engine phases (medians, ms, InvokeReply timings): " + "; ".join(
            f"{mode} " + ", ".join(f"{p} {_ms(ph.get(p))}" for p in PHASES)
            for mode in MODES if (ph := e.get("phases", {}).get(mode))) + ".", ""]
    for what, err in (results.get("errors") or {}).items():
        lines.append(f"- {what}: {_one_line(err)}")
    return "\n".join(lines).rstrip() + "\n"


def _load(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "?"


def _one_line(s: str, limit: int = 200) -> str:
    s = " ".join(str(s).split()).replace("|", "/")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def suite_rows(data: dict) -> list[dict]:
    """Per handler: the engine-direct p50 per mode and the ratio to the daemon path."""
    rows = []
    for kind, r in (data.get("ratios") or {}).items():
        cells = " / ".join(_ms(r.get(m, {}).get("engine")) for m in MODES)
        ratio = " / ".join("—" if r.get(m, {}).get("ratio") is None else
                           f"{r[m]['ratio']:.2f}" for m in MODES)
        rows.append({"figure": f"engine-direct p50 warm / cold / fork / plain ({kind})",
                     "value": f"{cells} ms", "target": "", "met": None})
        rows.append({"figure": f"engine-direct / daemon p50, warm / cold / fork / plain ({kind})",
                     "value": ratio, "target": "", "met": None})
    return rows
