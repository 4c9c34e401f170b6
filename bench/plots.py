#!/usr/bin/env python3
"""Draw the suite's plots (docs/img/*.png) from the newest result of each benchmark.

    bench/plots.py [--results DIR] [--out DIR] [RESULT.json ...]

Files given on the command line are used by their kind (the 'benchmark' field, or the file
name); otherwise the newest bench/results/<kind>-*.json of each kind. A plot whose inputs are
missing is skipped with a message naming them: one benchmark not run (or failed) must not cost
the pictures of the others, so the exit status is 0 then too; it is 1 only when a plot broke on
inputs that do exist (a malformed result, a bug here), after the other plots are drawn. Needs Debian's python3-matplotlib; when run by another python without it
(a pyenv shim, say) it re-runs itself with /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers.suite import RESULTS_DIR, load  # noqa: E402

DOCS_IMG = HERE.parent / "docs" / "img"
SYSTEM_PYTHON = "/usr/bin/python3"


def _need_matplotlib() -> bool:
    """True when matplotlib imports; else re-exec with Debian's python if that is another one."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        if os.path.exists(SYSTEM_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(
                SYSTEM_PYTHON) and not os.environ.get("EMBER_PLOTS_REEXEC"):
            os.environ["EMBER_PLOTS_REEXEC"] = "1"
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, *sys.argv])
        return False


def draw_all(loaded: dict, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw every plot whose inputs exist; ([written files], [why each skipped plot was skipped])."""
    from peers import plots  # after the matplotlib check: it picks the Agg backend on import
    from peers.restore_plots import plot_restore

    fork = loaded.get("fork-boot", (None, None))[1]
    invoke = loaded.get("invoke-latency", (None, None))[1]
    restore = loaded.get("restore", (None, None))[1]
    jobs = (("latency.png", lambda p: plots.plot_latency(fork, invoke, p)),
            ("density.png", lambda p: plots.plot_density(fork, p)),
            ("burst.png", lambda p: plots.plot_burst(fork, p)),
            ("restore.png", lambda p: plot_restore(restore, p)))
    written, skipped = [], []
    for name, draw in jobs:
        try:
            written.append(draw(out_dir / name))
        except plots.MissingData as e:
            skipped.append(f"{name} skipped: {e}")
        except Exception as e:  # a malformed result must not cost the other plots
            skipped.append(f"{name} failed: {type(e).__name__}: {e}")
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="result JSON files (default: newest)")
    ap.add_argument("--results", type=Path, default=RESULTS_DIR)
    ap.add_argument("--out", type=Path, default=DOCS_IMG)
    a = ap.parse_args(argv)
    if not _need_matplotlib():
        print("plots.py: matplotlib is missing (apt-get install python3-matplotlib); no plots",
              file=sys.stderr)
        return 1
    loaded = load(a.files or None, a.results)
    for kind in ("invoke-latency", "fork-boot", "restore"):
        if kind not in loaded:
            where = "among the files given" if a.files else f"in {a.results}"
            print(f"plots.py: no {kind} result {where}", file=sys.stderr)
    for kind, (path, _) in sorted(loaded.items()):
        print(f"plots.py: {kind}: {path}")
    written, skipped = draw_all(loaded, a.out)
    for why in skipped:
        print(f"plots.py: {why}", file=sys.stderr)
    for p in written:
        print(f"wrote {p}")
    # Missing inputs are expected (a benchmark not run); a plot that broke on present data is not.
    return 1 if any(" failed: " in why for why in skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
