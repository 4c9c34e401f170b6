"""The suite's three pictures: latency per boot mode against the peers, density, burst.

Each function takes the loaded result dicts and an output path, draws with matplotlib's Agg
backend (no display on a benchmark host) and returns the path, or raises MissingData naming
what it needed, so bench/plots.py can skip one plot and still draw the others. Sizes are fixed
(900x500 at dpi 100) and nothing random is drawn, so a re-run on the same files gives the same
picture.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from peers.suite import machine_line, stat, timestamp  # noqa: E402

SIZE, DPI = (9, 5), 100
# One colour per kind of runtime, the same in every plot.
COLOURS = {"ember warm": "#2a9d8f", "ember fork": "#e76f51", "ember plain": "#f4a261",
           "raw floor": "#8d99ae", "crun": "#457b9d", "runc": "#1d3557", "runsc": "#6d597a"}


class MissingData(Exception):
    """A plot's inputs are absent; the message names which result or field."""


def _title(fig, what: str, runs: list[dict]) -> None:
    """The plot's subject, then which run(s) on which machine (OS left out: it fits one line)."""
    stamps = ", ".join(f"{d.get('benchmark', '?')} {timestamp(d)}" for d in runs)
    machine = next((d["machine"] for d in runs if isinstance(d.get("machine"), dict)), None)
    brief = {k: v for k, v in (machine or {}).items() if k != "os"} or None
    fig.suptitle(f"{what}\n{stamps} on {machine_line(brief)}", fontsize=9)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    return out


def latency_bars(fork: dict | None, invoke: dict | None) -> dict:
    """{handler: [(label, min, median, p99)]} in boot-mode order; peers from the fork-boot run.

    ember warm/plain come from invoke-latency (plain from fork-boot when invoke is missing);
    ember fork, the raw floor and the peers from fork-boot (from invoke when fork is missing),
    so each bar's peers ran interleaved with the ember figure next to them."""
    fork_lat = (fork or {}).get("latency") or {}
    inv_fns = (invoke or {}).get("functions") or {}
    out = {}
    for handler in ("light", "heavy"):
        fv = (fork_lat.get(handler) or {}).get("variants", {})
        iv = (inv_fns.get(handler) or {}).get("variants", {})
        wanted = [("ember warm", iv.get("ember invoke, warm")),
                  ("ember plain", iv.get("ember invoke, plain boot") or fv.get("ember plain boot")),
                  ("ember fork", fv.get("ember fork boot")),
                  ("raw floor", fv.get("raw floor (fork server)"))]
        wanted += [(peer, fv.get(peer) or iv.get(peer)) for peer in ("crun", "runc", "runsc")]
        bars = []
        for label, entry in wanted:
            figs = [stat(entry, k) for k in ("min_ms", "median_ms", "p99_ms")]
            if None not in figs:
                bars.append((label, *figs))
        if bars:
            out[handler] = bars
    return out


def plot_latency(fork: dict | None, invoke: dict | None, out: Path) -> Path:
    bars = latency_bars(fork, invoke)
    if not bars:
        raise MissingData("latency: no fork-boot 'latency' nor invoke-latency 'functions' figures")
    fig, axes = plt.subplots(1, len(bars), figsize=SIZE, squeeze=False)
    for ax, (handler, rows) in zip(axes[0], bars.items()):
        labels = [r[0] for r in rows]
        med = [r[2] for r in rows]
        err = [[r[2] - r[1] for r in rows], [r[3] - r[2] for r in rows]]
        ax.bar(range(len(rows)), med, yerr=err, capsize=3,
               color=[COLOURS.get(lbl, "#999999") for lbl in labels])
        for i, r in enumerate(rows):  # the median, written above the whisker's top
            ax.annotate(f"{r[2]:.3g}", (i, r[3]), textcoords="offset points", xytext=(0, 2),
                        ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("ms (bar: median, whisker: min..p99)")
        ax.set_title(f"{handler} Python handler", fontsize=9)
        ax.grid(axis="y", which="both", alpha=0.3)
    _title(fig, "Start + one invocation, per boot mode, against the peers",
           [d for d in (fork, invoke) if d])
    return _save(fig, out)


def density_bars(fork: dict | None) -> list[tuple[str, float | None, float | None]]:
    """[(label with instance count, PSS MiB, MemAvailable drop MiB)] for fork, plain, crun."""
    dens = (fork or {}).get("density") or {}
    rows = []
    for key, name, count in (("fork", "ember fork", "started"), ("plain", "ember plain", "started"),
                             ("crun", "crun", "containers")):
        d = dens.get(key)
        if not isinstance(d, dict) or d.get("measured") is False:
            continue
        pss = stat(d.get("pss_kib"), "mean")
        drop = d.get("memavailable_drop_kib_per_instance")
        drop = float(drop) / 1024 if isinstance(drop, (int, float)) else None
        if pss is None and drop is None:
            continue
        rows.append((f"{name}\n({d.get(count, '?')} alive)", None if pss is None else pss / 1024,
                     drop))
    return rows


def plot_density(fork: dict | None, out: Path) -> Path:
    rows = density_bars(fork)
    if not rows:
        raise MissingData("density: no fork-boot result with a 'density' part")
    fig, axes = plt.subplots(1, 2, figsize=SIZE)
    panels = ((1, "PSS per instance (mean)"), (2, "MemAvailable drop per instance"))
    for ax, (col, what) in zip(axes, panels):
        vals = [r[col] if r[col] is not None else 0.0 for r in rows]
        names = [r[0] for r in rows]
        ax.bar(range(len(rows)), vals,
               color=[COLOURS.get(n.split("\n")[0], "#999999") for n in names])
        for i, v in enumerate(vals):
            ax.annotate(f"{v:.2f}" if rows[i][col] is not None else "n/a", (i, v),
                        textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
        ax.set_xticks(range(len(rows)), names, fontsize=8)
        ax.set_ylabel("MiB")
        ax.set_title(what, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    _title(fig, "Density: memory per idle instance", [fork])
    return _save(fig, out)


def bursts(fork: dict | None) -> list[dict]:
    """The burst record(s) of a fork-boot result; one dict today, a list tolerated."""
    b = (fork or {}).get("burst")
    items = b if isinstance(b, list) else [b] if isinstance(b, dict) else []
    return [x for x in items if isinstance(x.get("boots_per_s"), (int, float))]


def plot_burst(fork: dict | None, out: Path) -> Path:
    items = bursts(fork)
    if not items:
        raise MissingData("burst: no fork-boot result with a 'burst' part")
    labels = [f"{b.get('ok', '?')}/{b.get('requested', '?')} boots" for b in items]
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    rates = [b["boots_per_s"] for b in items]
    left.bar(range(len(items)), rates, 0.5, color=COLOURS["ember fork"])
    for i, r in enumerate(rates):
        left.annotate(f"{r:.0f}/s", (i, r), textcoords="offset points", xytext=(0, 2),
                      ha="center", fontsize=8)
    left.axhline(1000, color="black", linestyle="--", linewidth=1, label="target 1,000/s")
    left.set_xticks(range(len(items)), labels, fontsize=8)
    left.set_ylim(0, max(1000, *rates) * 1.2)  # room for the target line and its legend
    left.set_ylabel("boots/s")
    left.set_title("throughput", fontsize=9)
    left.legend(fontsize=8, loc="upper right")
    width = 0.25
    for j, (key, shade) in enumerate((("median", "#f4a261"), ("p99", "#e76f51"))):
        vals = [stat(b.get("boot_ms"), key) or 0.0 for b in items]
        xs = [i + (j - 0.5) * width for i in range(len(items))]
        right.bar(xs, vals, width, color=shade, label="p50" if key == "median" else "p99")
        for x, v in zip(xs, vals):
            right.annotate(f"{v:.4g}", (x, v), textcoords="offset points", xytext=(0, 2),
                           ha="center", fontsize=8)
    right.axhline(10, color="black", linestyle="--", linewidth=1, label="p99 target 10 ms")
    right.set_yscale("log")
    right.set_xticks(range(len(items)), labels, fontsize=8)
    right.set_ylabel("boot latency, ms (server side)")
    right.set_title("boot latency during the burst", fontsize=9)
    right.legend(fontsize=8, loc="center right")
    for ax in (left, right):
        ax.set_xlim(-0.8, len(items) - 0.2)  # one burst: a bar, not a wall
        ax.grid(axis="y", alpha=0.3)
    _title(fig, "Burst of fork boots", [fork])
    return _save(fig, out)
