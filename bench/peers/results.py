"""The end of every benchmark run: its scratch space removed (or what was left named) and its
results stamped and written as bench/results/KIND-TIMESTAMP.json, for bench/report.py."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path


def remove_scratch(root: Path, left: list[str], workdir: Path, own_workdir: bool,
                   warnings: list[str]) -> None:
    """Removes the run's scratch root unless something is still mounted or in use under it
    (then names it in `warnings`: deleting under a live mount would reach into it)."""
    if left:
        warnings.append("left behind (not removed): " + ", ".join(left))
    else:
        shutil.rmtree(root, ignore_errors=True)
    if own_workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def save_results(results: dict, kind: str, started: dt.datetime, warnings: list[str],
                 results_dir: str) -> Path:
    """Stamps the run's warnings, duration and final load average into `results` and writes
    them; returns the file."""
    results["warnings"] = warnings
    results["elapsed_s"] = round((dt.datetime.now() - started).total_seconds(), 1)
    results["machine"]["loadavg_at_end"] = os.getloadavg()[0]
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"{kind}-{started.strftime('%Y%m%d-%H%M%S')}.json"
    out_file.write_text(json.dumps(results, indent=1) + "\n")
    return out_file
