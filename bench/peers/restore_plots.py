"""The restore plot (docs/img/restore.png): restore → answer per boot mode against the peers'
restores, one panel per handler, bars at the median with min..p99 whiskers on a log scale.

A variant that failed (Debian's criu on this kernel, say) keeps its place on the axis, marked
"failed", so the picture never hides a peer that could not run.
"""

from __future__ import annotations

from pathlib import Path

from peers.plots import COLOURS, SIZE, MissingData, _save, _title, plt
from peers.restore_latency import COLD, FORK, PLAIN, WARM
from peers.restore_peers import CRIU, RUNC, RUNSC
from peers.suite import stat

LABELS = ((WARM, "ember warm"), (COLD, "ember cold"), (FORK, "ember fork"),
          (PLAIN, "ember plain"), (RUNSC, "runsc restore"), (RUNC, "runc + CRIU"),
          (CRIU, "bare CRIU"))
RESTORE_COLOURS = {**COLOURS, "ember cold": "#264653", "runsc restore": COLOURS["runsc"],
                   "runc + CRIU": COLOURS["runc"], "bare CRIU": "#b5838d"}


def restore_bars(data: dict | None) -> dict:
    """{handler: [(label, min, median, p99) or (label, None, None, None) when it failed]}, in
    LABELS order; variants not in the result at all are left out."""
    out = {}
    for handler in ("light", "heavy"):
        variants = (((data or {}).get("latency") or {}).get(handler) or {}).get("variants") or {}
        bars = []
        for name, label in LABELS:
            if name not in variants:
                continue
            figs = [stat(variants[name], k) for k in ("min_ms", "median_ms", "p99_ms")]
            bars.append((label, *figs) if None not in figs else (label, None, None, None))
        if any(b[2] is not None for b in bars):
            out[handler] = bars
    return out


def plot_restore(data: dict | None, out: Path) -> Path:
    bars = restore_bars(data)
    if not bars:
        raise MissingData("restore: no restore result with 'latency' figures")
    fig, axes = plt.subplots(1, len(bars), figsize=SIZE, squeeze=False)
    for ax, (handler, rows) in zip(axes[0], bars.items()):
        ok = [(i, r) for i, r in enumerate(rows) if r[2] is not None]
        ax.bar([i for i, _ in ok], [r[2] for _, r in ok],
               yerr=[[r[2] - r[1] for _, r in ok], [r[3] - r[2] for _, r in ok]], capsize=3,
               color=[RESTORE_COLOURS.get(r[0], "#999999") for _, r in ok])
        for i, r in ok:  # the median, written above the whisker's top
            ax.annotate(f"{r[2]:.3g}", (i, r[3]), textcoords="offset points", xytext=(0, 2),
                        ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        floor = min(r[1] for _, r in ok)
        for i, r in enumerate(rows):
            if r[2] is None:
                ax.annotate("failed", (i, floor), ha="center", va="bottom", fontsize=7,
                            rotation=90, color="#b00020")
        ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=30, ha="right",
                      fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("ms (bar: median, whisker: min..p99)")
        ax.set_title(f"{handler} Python handler", fontsize=9)
        ax.grid(axis="y", which="both", alpha=0.3)
    _title(fig, "Restore → answer per boot mode, against the peers' restores", [data])
    return _save(fig, out)
