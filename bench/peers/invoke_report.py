"""The tables of bench/invoke_latency.py: invocations through the daemon next to the cold
starts of the peers, and where the daemon's time goes (Server-Timing)."""

from __future__ import annotations

from .report import _one_line, fmt_ms

BEGIN_MARK = "<!-- invoke-latency:begin -->"
END_MARK = "<!-- invoke-latency:end -->"

WARM = "ember invoke, warm"
PLAIN = "ember invoke, plain boot"
PHASES = ["sandbox", "init", "queue", "handler", "total"]


def ratio(value: dict, reference: dict | None) -> str:
    if "median_ms" not in value or not reference or "median_ms" not in reference:
        return "–"
    r = value["median_ms"] / reference["median_ms"]
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×"


def _failed_cell(r: dict, errors: dict, name: str) -> str:
    listed = name in errors or (name in (WARM, PLAIN) and "ember daemon" in errors)
    why = "could not run (see below)" if listed else _one_line(r["error"])
    return f"failed: {why}"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['timestamp']} ({results['mode']}: {results['warmups']} warm-up rounds, "
        f"{results['iterations']} interleaved rounds, {results['warm_per_round']} warm invocations "
        f"per round). Machine: {m['os']}, kernel {m['kernel']}, {m['cpus']} × {m['cpu_model']}, "
        f"{m['memory_gib']} GiB, cgroups {m['cgroups']}; load average "
        f"{m['loadavg_at_start']:.2f} at start, {m.get('loadavg_at_end', float('nan')):.2f} at end.",
        "",
    ]
    versions = "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items())
    if versions:
        lines += [f"Versions: {versions}.", ""]
    groups = results["functions"]
    errors = results.get("tool_errors", {})
    names: list[str] = []
    for g in groups.values():
        names += [n for n in g["variants"] if n not in names]
    if groups and names:
        lines.append("Median wall time in ms, client side (in brackets: median / ember's plain-boot "
                     "invoke median, median / ember's warm invoke median):")
        lines.append("")
        lines.append("| variant | " + " | ".join(g["title"] for g in groups.values()) + " |")
        lines.append("| --- |" + " ---: |" * len(groups))
        for name in names:
            cells = []
            for g in groups.values():
                r = g["variants"].get(name)
                plain, warm = g["variants"].get(PLAIN), g["variants"].get(WARM)
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("failed")
                elif name == WARM:
                    cells.append(fmt_ms(r["median_ms"]) if r["median_ms"] >= 1
                                 else f"{r['median_ms']:.2f}")
                elif name == PLAIN:
                    cells.append(f"{fmt_ms(r['median_ms'])} (1.00×, {ratio(r, warm)})")
                else:
                    cells.append(f"{fmt_ms(r['median_ms'])} ({ratio(r, plain)}, {ratio(r, warm)})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for g in groups.values():
        plain, warm = g["variants"].get(PLAIN), g["variants"].get(WARM)
        lines.append(f"**{g['title']}** (function `{g['function']}`) — ms")
        lines.append("")
        lines.append("| variant | n | min | median | p99 | median / ember plain boot | "
                     "median / ember warm |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, r in g["variants"].items():
            if "error" in r:
                lines.append(f"| {name} | {r['n']} | – | – | – | "
                             f"{_failed_cell(r, errors, name)} | |")
                continue
            cells = [fmt_small(r["min_ms"]), fmt_small(r["median_ms"]), fmt_small(r["p99_ms"])]
            lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) +
                         f" | {ratio(r, plain)} | {ratio(r, warm)} |")
        lines.append("")
    timing_rows = [(g, name, st) for g in groups.values()
                   for name, st in g.get("server_timing", {}).items() if st]
    if timing_rows:
        lines.append("Where the daemon's time goes: medians of its `Server-Timing` phases in ms "
                     "(`queue` is the wait for an instance, its boot included; `total` is arrival "
                     "to answer), beside the client's median wall time:")
        lines.append("")
        lines.append("| handler | invoke | " + " | ".join(PHASES) + " | client wall | "
                     "client − total |")
        lines.append("| --- | --- |" + " ---: |" * (len(PHASES) + 2))
        for g, name, st in timing_rows:
            wall = g["variants"].get(name, {}).get("median_ms")
            cells = [fmt_small(st.get(p, float("nan"))) for p in PHASES]
            overhead = (fmt_small(st["client_minus_total_ms"])
                        if "client_minus_total_ms" in st else "–")
            lines.append(f"| {g['kind']} | {name.replace('ember invoke, ', '')} | "
                         + " | ".join(cells) + f" | {fmt_small(wall or float('nan'))} | "
                         f"{overhead} |")
        lines.append("")
    if errors:
        lines.append("Could not run:")
        lines.append("")
        for name, err in errors.items():
            lines.append(f"* {name}: {_one_line(err)}")
        lines.append("")
    return "\n".join(lines)


def fmt_small(v: float) -> str:
    if v != v:  # nan
        return "–"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    return fmt_ms(v)
