"""What a run produces for people: the markdown tables, the target check, and the rewrite of
docs/benchmarks.md between its markers. The JSON file is the results dict as is.
"""

from __future__ import annotations

import os
from pathlib import Path

from .scenarios import SCENARIOS

BEGIN_MARK = "<!-- run-vs-peers:begin -->"
END_MARK = "<!-- run-vs-peers:end -->"


def fmt_ms(v: float) -> str:
    if v != v:  # nan
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['timestamp']} ({results['mode']}: {results['warmups']} warm-ups, "
        f"{results['iterations']} interleaved rounds). Machine: {m['os']}, kernel {m['kernel']}, "
        f"{m['cpus']} × {m['cpu_model']}, {m['memory_gib']} GiB, cgroups {m['cgroups']}; "
        f"load average {m['loadavg_at_start']:.2f} at start, "
        f"{m.get('loadavg_at_end', float('nan')):.2f} at end.",
        "",
    ]
    if results.get("ember_image_held"):
        lines += ["ember ran with its image held mounted by an idle sandbox (--ember-hold-image).",
                  ""]
    versions = "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items())
    if versions:
        lines += [f"Versions: {versions}.", ""]
    # Summary: median (median / ember's median) per tool and scenario.
    present = [sc for sc in SCENARIOS if sc["name"] in results["scenarios"]]
    names: list[str] = []
    for sc in present:
        names += [n for n in results["scenarios"][sc["name"]] if n not in names]
    if present and names:
        lines.append("Median start → exit in ms (median / ember's median):")
        lines.append("")
        lines.append("| tool | " + " | ".join(sc["title"] for sc in present) + " |")
        lines.append("| --- |" + " ---: |" * len(present))
        for name in names:
            cells = []
            for sc in present:
                per_tool = results["scenarios"][sc["name"]]
                r = per_tool.get(name)
                ember = per_tool.get("ember", {}).get("median_ms")
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("failed")
                elif ember and name != "ember":
                    cells.append(f"{fmt_ms(r['median_ms'])} ({r['median_ms'] / ember:.2f}×)")
                else:
                    cells.append(fmt_ms(r["median_ms"]))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for sc in SCENARIOS:
        per_tool = results["scenarios"].get(sc["name"])
        if per_tool is None:
            continue
        lines.append(f"**{sc['title']}** — start → exit, ms")
        lines.append("")
        lines.append("| tool | n | min | median | p99 | median / ember |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        ember = per_tool.get("ember", {}).get("median_ms")
        for name, r in per_tool.items():
            if "error" in r:
                why = ("could not run (see below)" if name in results.get("tool_errors", {})
                       else _one_line(r["error"]))
                lines.append(f"| {name} | {r['n']} | – | – | – | failed: {why} |")
                continue
            if name == "ember":
                ratio = "1.00×"
            elif ember:
                ratio = f"{r['median_ms'] / ember:.2f}×"
            else:
                ratio = "–"
            lines.append(f"| {name} | {r['n']} | {fmt_ms(r['min_ms'])} | "
                         f"{fmt_ms(r['median_ms'])} | {fmt_ms(r['p99_ms'])} | {ratio} |")
        lines.append("")
    lines += floor_lines(results)
    if results.get("tool_errors"):
        lines.append("Tools that could not run:")
        lines.append("")
        for name, err in results["tool_errors"].items():
            lines.append(f"* {name}: {_one_line(err)}")
        lines.append("")
    lines.append(f"Target: {results['target']['text']}")
    return "\n".join(lines) + "\n"


BASELINE = "unshare+chroot"
ISO_FLOOR = "unshare+overlay+cgroup"
FULL_FLOOR = "full mandate (C)"


def floor_gaps(per_tool: dict) -> dict:
    """ember's median minus each floor's, and what the mandated rootfs and cgroup, and all the
    mandated kernel work, add to the bare floor (None when a figure is missing)."""
    def p50(name):
        r = per_tool.get(name, {})
        return None if "error" in r else r.get("median_ms")

    ember, base, iso, full = p50("ember"), p50(BASELINE), p50(ISO_FLOOR), p50(FULL_FLOOR)
    return {"ember - unshare+chroot": None if None in (ember, base) else ember - base,
            "ember - floor with the mandated rootfs and cgroup":
                None if None in (ember, iso) else ember - iso,
            "mandated rootfs and cgroup - unshare+chroot":
                None if None in (iso, base) else iso - base,
            "ember - full mandate (C)": None if None in (ember, full) else ember - full,
            "full mandate - unshare+chroot": None if None in (full, base) else full - base}


FULL_GAPS = ("ember - full mandate (C)", "full mandate - unshare+chroot")


def floor_lines(results: dict) -> list[str]:
    """Per scenario: ember − unshare+chroot, ember − floor with the mandated rootfs and cgroup
    (unshare+overlay+cgroup), what that rootfs and cgroup add to the bare floor and, when the
    full mandate (C) floor was measured, ember − that floor and what it adds to the bare one."""
    with_full = any(FULL_FLOOR in (results["scenarios"].get(sc["name"]) or {})
                    for sc in SCENARIOS)
    rows = []
    for sc in SCENARIOS:
        per_tool = results["scenarios"].get(sc["name"])
        if per_tool is None or (ISO_FLOOR not in per_tool and FULL_FLOOR not in per_tool):
            continue
        gaps = floor_gaps(per_tool)
        shown = [v for k, v in gaps.items() if with_full or k not in FULL_GAPS]
        rows.append(f"| {sc['title']} | " + " | ".join(
            "–" if v is None else f"{v:+.1f}" for v in shown) + " |")
    if not rows:
        return []
    header = ("| scenario | ember − unshare+chroot | ember − floor with the mandated rootfs and "
              "cgroup | rootfs and cgroup − unshare+chroot |")
    rule = "| --- | ---: | ---: | ---: |"
    if with_full:
        header += " ember − full mandate (C) | full mandate − unshare+chroot |"
        rule += " ---: | ---: |"
    return ["Isolation floors — differences of medians, ms:", "", header, rule, *rows, ""]


def _one_line(s: str, limit: int = 300) -> str:
    s = " ".join(s.split()).replace("|", "\\|")
    return s if len(s) <= limit else s[:limit] + "…"


def check_target(results: dict) -> dict:
    light = results["scenarios"].get("python-light", {})
    ember = light.get("ember", {})
    base = light.get("unshare+chroot", {})
    crun = light.get("crun", {})
    if "median_ms" not in ember:
        why = ember.get("error", "ember was not measured")
        return {"met": None, "text": f"not checked: ember light Python has no figure ({_one_line(why, 200)})."}
    parts, met = [], True
    e = ember["median_ms"]
    if "median_ms" in base:
        ok = e <= base["median_ms"] + 1.0
        met &= ok
        parts.append(f"ember {e:.1f} ms ≤ unshare+chroot {base['median_ms']:.1f} + 1 ms: "
                     f"{'yes' if ok else 'NO'}")
    else:
        met = False
        parts.append("unshare+chroot baseline missing")
    iso = light.get(ISO_FLOOR, {})
    if "median_ms" in iso:
        # Not a target: how far ember is from what its mandated rootfs and cgroup cost alone.
        parts.append(f"ember − floor with the mandated rootfs and cgroup "
                     f"{e - iso['median_ms']:+.1f} ms (that floor {iso['median_ms']:.1f})")
    full = light.get(FULL_FLOOR, {})
    if "median_ms" in full:
        # Not a target either: ember's own overhead over all the kernel work it must do.
        parts.append(f"ember − full mandate (C) {e - full['median_ms']:+.1f} ms "
                     f"(that floor {full['median_ms']:.1f})")
    if "median_ms" in crun:
        ok = e < crun["median_ms"]
        met &= ok
        parts.append(f"ember < crun {crun['median_ms']:.1f} ms: {'yes' if ok else 'NO'}")
    else:
        met = False
        parts.append("crun missing")
    return {"met": met, "text": f"light Python — {'; '.join(parts)} → "
            f"{'MET' if met else 'NOT MET'}."}


def write_docs(table: str, path: Path, begin: str = BEGIN_MARK, end: str = END_MARK) -> None:
    text = path.read_text()
    b, e = text.find(begin), text.find(end)
    if b < 0 or e < b:
        raise SystemExit(f"{path}: markers {begin} / {end} not found")
    new = text[: b + len(begin)] + "\n" + table + text[e:]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
