#!/usr/bin/env python3
"""One record and one summary of the whole benchmark suite, from each benchmark's newest result.

    bench/report.py [--results DIR] [--docs FILE] [--write-docs] [RESULT.json ...]

Writes bench/results/suite-<timestamp>.json (the machine, and per benchmark the file it read,
its timestamp and its headline figures) and prints the summary table; with --write-docs it also
rewrites the "Summary" section of docs/benchmarks.md (between <!-- suite:begin --> and
<!-- suite:end -->), with the plots bench/plots.py drew into docs/img. The benchmark scripts
each own their section; this one only says, at the top, how the figures stand against their
targets, so a reader need not add up four sections. A missing benchmark is named, never fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers.engine_report import suite_rows as engine_rows  # noqa: E402
from peers.suite import RESULTS_DIR, load, newest, summary, timestamp  # noqa: E402

BEGIN_MARK = "<!-- suite:begin -->"
END_MARK = "<!-- suite:end -->"
DOCS = HERE.parent / "docs" / "benchmarks.md"
# (file under docs/img, alt text), in the order the summary shows them.
PLOTS = (("latency.png", "latency per boot mode against the peers"),
         ("density.png", "memory per idle instance"),
         ("burst.png", "burst of fork boots"),
         ("restore.png", "restore to answer per boot mode against the peers' restores"))


def _met(m: bool | None) -> str:
    return "—" if m is None else "yes" if m else "**NOT met**"


def markdown(suite: dict, img_dir: Path | None = None, img_prefix: str = "img/") -> str:
    """The Summary section's body: machine, the files read, headline figures, the plots.

    Only plots that exist in img_dir are linked (all of PLOTS when img_dir is None), so the
    page never shows a broken image for a benchmark that was not run."""
    lines = [f"Machine: {suite['machine_line']}.", "",
             f"Written by `bench/report.py` at {suite.get('written', '?')} from the newest result"
             " of each benchmark:", ""]
    lines += ["| benchmark | run | mode | file |", "| --- | --- | --- | --- |"]
    for kind, rec in suite["benchmarks"].items():
        lines.append(f"| {kind} | {rec['timestamp']} | {rec.get('mode') or '—'} | "
                     f"`{Path(rec['path']).name}` |")
    for kind in suite.get("missing", []):
        lines.append(f"| {kind} | not run (no result file) | — | — |")
    lines += ["", "| figure | value | target | met |", "| --- | --- | --- | --- |"]
    for kind in ("fork-boot", "restore", "run-vs-peers", "invoke-latency", ENGINE_KIND):
        for row in suite["benchmarks"].get(kind, {}).get("rows", []):
            lines.append(f"| {row['figure']} | {row['value']} | {row['target'] or '—'} | "
                         f"{_met(row['met'])} |")
    micro = suite["benchmarks"].get("micro", {}).get("figures", {})
    if micro:
        lines += ["", "Micro costs (ember-micro-bench, real time): " +
                  "; ".join(f"`{name}` {t}" for name, t in micro.items()) + "."]
    shown = [(f, alt) for f, alt in PLOTS if img_dir is None or (img_dir / f).exists()]
    if shown:
        for f, alt in shown:  # a paragraph each: one picture per row
            lines += ["", f"![{alt}]({img_prefix}{f})"]
    return "\n".join(lines) + "\n"


ENGINE_KIND = "engine-latency"  # bench/engine_latency.py: read here, not by peers/suite.py


def load_engine(files: list[Path] | None, results_dir: Path) -> tuple[Path, dict] | None:
    """The engine-latency result among `files`, else the newest in results_dir; None if none."""
    if files:
        paths = [p for p in files if Path(p).name.startswith(ENGINE_KIND + "-")]
    else:
        paths = [p for p in [newest(results_dir, ENGINE_KIND)] if p is not None]
    for p in reversed(paths):
        try:
            return Path(p), json.loads(Path(p).read_text())
        except (OSError, ValueError):
            continue
    return None


def write_section(body: str, path: Path) -> None:
    """Replace what lies between the suite markers; the rest of the page is left byte for byte."""
    text = path.read_text()
    b, e = text.find(BEGIN_MARK), text.find(END_MARK)
    if b < 0 or e < b:
        raise ValueError(f"{path}: markers {BEGIN_MARK} / {END_MARK} not found")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text[: b + len(BEGIN_MARK)] + "\n" + body + text[e:])
    os.replace(tmp, path)


def build(loaded: dict, results_dir: Path, stamp: str | None = None,
          engine: tuple[Path, dict] | None = None) -> tuple[dict, Path]:
    """The suite record, written to results_dir/suite-<stamp>.json; (record, its path)."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    suite = summary(loaded)
    if engine is not None:
        path, data = engine
        suite["benchmarks"][ENGINE_KIND] = {"path": str(path), "timestamp": timestamp(data),
                                            "mode": data.get("mode"), "rows": engine_rows(data)}
    suite["benchmark"] = "suite"
    suite["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"suite-{stamp}.json"
    out.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n")
    return suite, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="result JSON files (default: newest)")
    ap.add_argument("--results", type=Path, default=RESULTS_DIR)
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args(argv)
    loaded = load(a.files or None, a.results)
    engine = load_engine(a.files or None, a.results)
    if not loaded and engine is None:
        print(f"report.py: no benchmark results in {a.results} (run bench/run.sh first)",
              file=sys.stderr)
        return 1
    suite, out = build(loaded, a.results, engine=engine)
    for kind in suite["missing"]:
        print(f"report.py: no {kind} result; the summary says it was not run", file=sys.stderr)
    body = markdown(suite, a.docs.parent / "img")
    print(body)
    print(f"wrote {out}")
    if a.write_docs:
        try:
            write_section(body, a.docs)
        except (OSError, ValueError) as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 1
        print(f"updated {a.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
