"""The tables of bench/fork_boot.py, and its section of docs/benchmarks.md.

The section between FORK_BEGIN and FORK_END is rewritten by --write-docs. When the markers are
not in the file yet, the whole section (what is measured, how to run it, the markers) is
appended once, so the docs are only ever changed by this writer.
"""

from __future__ import annotations

import os
from pathlib import Path

from .fork_latency import FLOOR, FORK, ISO_FLOOR, PLAIN
from .invoke_report import PHASES, fmt_small
from .report import _one_line

BEGIN_MARK = "<!-- fork-boot:begin -->"
END_MARK = "<!-- fork-boot:end -->"
MIB = 1024.0

SECTION = f"""
## Fork boot

`bench/fork_boot.py` (step 6 of `run.sh`; `--only fork-boot` runs it alone) measures the three
claims of fork boot through a private `ember daemon` (own data and run dirs, cgroup pool
`ember-bench-fork`, `--queue-size` above the burst). The light and heavy handlers of the
sections above are deployed with `template = "deploy"`, `keep_alive = "1h"` and
`max_instances = 1000` (the manifest's cap; more instances than that are spread over several
functions with the same code, each with its own template). The daemon is restarted (and `ember
cleanup` run) before the burst and before the density run, so each part starts with empty
pools.

* **Latency.** 3 warm-up rounds, then 40 interleaved rounds (10 with `--quick`), each starting
  one variant later than the previous, of: 10 (5) `POST …/invoke?boot=fork`, each answered by a
  fresh fork-booted instance (a new `X-Ember-Instance` with `X-Ember-Boot-Mode: fork` is
  checked); 10 (5) requests to the **raw floor**; 10 (5) to the **isolated floor**; one
  `?boot=plain`; one cold start each of crun, runc and runsc (as in the sections above). The
  raw floor is `bench/peers/fork_floor.py`: the host's python3.11, no sandbox, the same handler
  module imported and `gc.freeze()`d, forking on each request line read from a unix socket, the
  child answering on it. The isolated floor is the same server with `--isolate`: each child,
  right after the fork and before it answers, does the kernel work issue 4 mandates for every
  fork-booted instance, at its minimum: it writes itself into a memory+cpu+pids cgroup made
  once per run (through `cgroup.procs` fds the server opened once; memory 1 GiB and 4,096 pids,
  as all the children share it), `unshare`s mount, ipc, uts, network and cgroup namespaces
  (`CLONE_NEWNET` included, ≈0.7 ms and serialized in the kernel; no pid namespace: a new one
  only applies to the caller's children, so it would take a second fork), makes `/` rprivate,
  mounts a 64 MiB tmpfs, an overlay with the image as lower and the tmpfs as upper, and a
  `/proc` on it (no pivot_root, seccomp, capability drop or `/dev`); the mounts and namespaces
  go with the child. Client wall time over a connection made beforehand, as for the
  invocations. The instances a round made are deleted after it (untimed, waited for).
  Targets: fork p50 ≤ 1.5 × floor p50; crun p50 ≥ 15 × fork p50 (light), ≥ 60 × (heavy).
  Printed with them, without a target: fork p50 / isolated floor p50 and isolated / raw floor
  p50.
* **Density.** N idle fork-booted instances of the light handler (`--density N`: 2000, 200 with
  `--quick`; up to 10,000, with `kernel.pid_max` raised for the run if needed and restored),
  started by forced invocations over 8 connections; the run stops early, and says so, when the
  daemon nears its `RLIMIT_NOFILE` or MemAvailable falls under 15 % of RAM. Per instance: PSS
  (sum of `Pss` in `/proc/PID/smaps_rollup` over the instance's processes) and the drop of
  `MemAvailable` over the run divided by N (kernel objects, pools and the daemon included), with
  the /proc/meminfo and slab caches that grew; the templates' PSS. The same for 50 (20)
  plain-boot instances and for 20 (5) idle crun containers of the same handler (`crun run
  --detach`). Target: 10,000 instances at once on 24 GiB, ≤ 1 MiB PSS each.
* **Burst.** 1,000 (200) invocations with `?boot=fork` written back to back on as many
  connections opened beforehand; wall time from the first write to the last answer, boots/s,
  p50/p99 of the boot (`Server-Timing` sandbox + init), of the queue wait, of the daemon's
  total and of the client's latency. Then the same number of request lines written at once to
  the raw floor's fork server and to the isolated floor's (20 warm-up requests each, one
  forking process as one template): answers per second over the time from the write to the
  last answer. Printed: boots/s of ember, the raw floor and the isolated floor, ember / isolated
  floor and isolated / raw floor. Target ≥ 1,000 boots/s on 2 cores, p99 boot ≤ 10 ms.

Reproduce: `bash bench/run.sh build/bin/ember --only fork-boot [--quick] [--write-docs]`;
`-- --density 10000` for the full density target, `-- --parts burst --burst 1000` for one part.

### Results

Rewritten by `bench/run.sh EMBER --write-docs` (or `fork_boot.py --write-docs`).

{BEGIN_MARK}
{END_MARK}
"""


def _mib(kib: float | None) -> str:
    return "–" if kib is None else f"{kib / MIB:.2f}"


def _ratio(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}×" if v >= 100 else (f"{v:.1f}×" if v >= 10 else f"{v:.2f}×")


def _met(m: bool | None) -> str:
    return "not checked" if m is None else ("met" if m else "NOT met")


def latency_lines(results: dict) -> list[str]:
    lines = []
    for kind, g in results.get("latency", {}).items():
        fork = g["variants"].get(FORK, {}).get("median_ms")
        lines += [f"**Latency, {g['title']}** (function `{g['function']}`) — client wall "
                  "time, ms", "",
                  "| variant | n | min | p50 | p99 | p50 / fork p50 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in g["variants"].items():
            if "error" in r:
                lines.append(f"| {name} | {r['n']} | – | – | – | failed: "
                             f"{_one_line(r['error'], 200)} |")
                continue
            ratio = _ratio(r["median_ms"] / fork) if fork else "–"
            lines.append(f"| {name} | {r['n']} | {fmt_small(r['min_ms'])} | "
                         f"{fmt_small(r['median_ms'])} | {fmt_small(r['p99_ms'])} | {ratio} |")
        lines.append("")
        for what, c in g["checks"].items():
            if c["value"] is None and not c["target"]:
                continue
            target = f" (target {c['target']}: {_met(c['met'])})" if c["target"] else ""
            lines.append(f"* {what}: {_ratio(c['value'])}{target}")
        lines.append("")
    rows = [(kind, name, p) for kind, g in results.get("latency", {}).items()
            for name, p in g.get("phases", {}).items() if p.get("n")]
    if rows:
        lines += ["Server-Timing phases, **mean** ms (median in brackets; for fork boot `sandbox` "
                  "is the pools and the template's clone, `init` the child's own setup):", "",
                  "| handler | invoke | n | " + " | ".join(PHASES) + " | client |",
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
    lines = ["**Density** — idle instances of the light handler, per instance "
             "(PSS in MiB: mean / median / p99; MemAvailable drop over the run / instances):", "",
             "| instances | requested | alive | PSS mean | PSS median | PSS p99 | private "
             "mean | MemAvailable drop | daemon fds | threads |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, key in (("ember fork boot", "fork"), ("ember plain boot", "plain")):
        r = d.get(key)
        if not r:
            continue
        if "error" in r:
            lines.append(f"| {label} | {r.get('requested', '–')} | – | failed: "
                         f"{_one_line(r['error'], 200)} | | | | | | |")
            continue
        pss, priv = r.get("pss_kib", {}), r.get("private_kib", {})
        fds = r.get("daemon_fds", {})
        lines.append(
            f"| {label} | {r['requested']} | {r['started']} | {_mib(pss.get('mean'))} | "
            f"{_mib(pss.get('median'))} | {_mib(pss.get('p99'))} | {_mib(priv.get('mean'))} | "
            f"{_mib(r.get('memavailable_drop_kib_per_instance'))} | "
            f"{fds.get('per_instance', float('nan')):.1f} | "
            f"{r.get('threads_per_instance', {}).get('mean', float('nan')):.1f} |")
    c = d.get("crun")
    if c and c.get("measured"):
        lines.append(f"| crun (idle container) | {c['containers']} | {c['containers']} | "
                     f"{_mib(c['pss_kib'].get('mean'))} | {_mib(c['pss_kib'].get('median'))} | "
                     f"{_mib(c['pss_kib'].get('p99'))} | {_mib(c['private_kib'].get('mean'))} | "
                     f"{_mib(c.get('memavailable_drop_kib_per_instance'))} | – | – |")
    elif c:
        lines.append(f"| crun (quoted, not measured) | – | – | {c['quoted_pss_mib']:.2f} | | | | "
                     f"| | |")
    lines.append("")
    f = d.get("fork", {})
    for t in f.get("templates", []):
        lines.append(f"* template of `{t['function']}` (pid {t['pid']}): PSS "
                     f"{_mib(t['Pss'])} MiB, RSS {_mib(t['Rss'])} MiB, with {t.get('children')} "
                     "children")
    if f.get("stopped"):
        lines.append(f"* fork boot stopped early: {_one_line(f['stopped'])}")
    if f.get("start_wall_s") is not None and f.get("started"):
        lines.append(f"* {f['started']} fork-booted instances started in {f['start_wall_s']} s "
                     f"over {d.get('workers', '?')} connections, deleted in "
                     f"{f.get('delete_wall_s', '–')} s; MemAvailable {f['memavailable_before_mib']}"
                     f" → {f['memavailable_after_mib']} MiB, "
                     f"{f.get('memavailable_after_cleanup_mib', '–')} MiB after cleanup; daemon "
                     f"fds {f['daemon_fds']['before']} → {f['daemon_fds']['after']} (limit "
                     f"{f['daemon_fds']['limit']}), {f.get('daemon_fds_after_cleanup', '–')} "
                     "after cleanup")
    parts = f.get("meminfo_delta_kib_per_instance")
    if parts:
        lines.append("* what a fork-booted instance adds to /proc/meminfo, KiB per instance: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()))
    cg = f.get("pool_cgroups")
    if cg:
        lines.append(f"* cgroups in the daemon's pool: {cg['before']} before, {cg['after']} with "
                     f"the instances, {cg.get('after_cleanup', '–')} after cleanup")
    slabs = f.get("slab_growth_kib_per_instance")
    if slabs:
        lines.append("* slab caches that grew most, KiB per instance: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in slabs.items()))
    steps = f.get("by_step", [])
    if len(steps) > 1:
        lines.append(f"* starts as instances pile up, {d.get('workers', '?')} at a time (median "
                     "ms, client / sandbox / init): "
                     + "; ".join(f"{s['from']}–{s['to']}: {fmt_small(s['invoke_ms'])} / "
                                 f"{fmt_small(s['sandbox_ms'])} / {fmt_small(s['init_ms'])}"
                                 for s in steps))
    lim = d.get("limits", {})
    if lim:
        lines.append(f"* kernel.pid_max {lim.get('pid_max')}"
                     + (f" (raised from {lim['was']} for the run, restored)"
                        if lim.get("raised") else ""))
    if c and not c.get("measured"):
        lines.append(f"* crun: {_one_line(c.get('error', ''), 200)}; quoted from {c['source']}")
    target = d.get("target")
    if target:
        lines.append(f"* target (10,000 alive, ≤ 1 MiB PSS each): {target}")
    lines.append("")
    return lines


def burst_lines(b: dict) -> list[str]:
    if not b:
        return []
    if "error" in b:  # ember's burst failed; the floors' (measured without ember) still show
        lines = [f"**Burst**: failed: {_one_line(b['error'])}", ""]
        lines += floor_burst_lines(b)
        return lines + [""] if len(lines) > 2 else lines

    def pair(key: str) -> str:
        v = b.get(key, {})
        return f"{fmt_small(_nan(v.get('median')))} / {fmt_small(_nan(v.get('p99')))}"

    lines = ["**Burst** — invocations written at once, each forcing a fork boot (ms: p50 / p99):",
             "", "| invocations | ok | wall ms | boots/s | boot (sandbox+init) | queue | "
             "daemon total | client |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| {b['requested']} | {b['ok']} | {b['wall_ms']:.0f} | "
             f"{b['boots_per_s'] or 0:.0f} | {pair('boot_ms')} | {pair('queue_ms')} | "
             f"{pair('server_total_ms')} | {pair('client_ms')} |", ""]
    for why, n in b.get("failures", {}).items():
        lines.append(f"* {n} failed: {_one_line(why, 200)}")
    lines += floor_burst_lines(b)
    if b.get("target"):
        lines.append(f"* target (≥ 1,000 boots/s, p99 boot ≤ 10 ms): {b['target']}")
    lines.append("")
    return lines


def floor_burst_lines(b: dict) -> list[str]:
    """The raw and the isolated floor's bursts, and boots/s of ember against both."""
    lines: list[str] = []
    floor = b.get("floor") or {}
    if floor.get("error"):
        lines.append(f"* raw floor burst: failed: {_one_line(floor['error'], 200)}")
    elif floor.get("forks_per_s"):
        reach = (f"; ember reaches {b['boots_per_s'] / floor['forks_per_s']:.2f}× of it"
                 if b.get("boots_per_s") else "")
        lines.append(f"* raw floor, the same burst to an unsandboxed fork server (one forking "
                     f"process, as one template): {floor['ok']} of {floor['requested']} answered "
                     f"in {floor['wall_ms']:.0f} ms = {floor['forks_per_s']:.0f} forks/s{reach}")
    iso = b.get("isolated_floor") or {}
    if iso.get("error"):
        lines.append(f"* isolated floor burst: failed: {_one_line(iso['error'], 200)}")
    elif iso.get("forks_per_s"):
        lines.append(f"* isolated floor, the same burst to the fork server whose children each "
                     f"enter a cgroup, unshare mount/ipc/uts/net/cgroup namespaces and mount a "
                     f"tmpfs, an overlay and /proc: {iso['ok']} of {iso['requested']} answered "
                     f"in {iso['wall_ms']:.0f} ms = {iso['forks_per_s']:.0f} forks/s"
                     + (f" ({iso['wrong']} wrong answers)" if iso.get("wrong") else ""))
    rates = burst_rates(b)
    if rates["isolated floor"] is not None:
        lines.append("* boots/s, ember / raw floor / isolated floor: "
                     + " / ".join(f"{v:.0f}" if v else "–" for v in
                                  (rates["ember"], rates["raw floor"], rates["isolated floor"]))
                     + "; ember / isolated floor " + _ratio(rates["ember / isolated floor"])
                     + ", isolated / raw floor " + _ratio(rates["isolated / raw floor"]))
    return lines


def burst_rates(b: dict) -> dict:
    """boots/s of ember, of the raw and of the isolated floor in the same burst, and their
    ratios (None when a figure is missing)."""
    def rate(r: dict | None) -> float | None:
        if not isinstance(r, dict) or r.get("error"):
            return None
        return r.get("forks_per_s") or r.get("boots_per_s") or None

    ember, raw, iso = rate(b), rate(b.get("floor")), rate(b.get("isolated_floor"))
    return {"ember": ember, "raw floor": raw, "isolated floor": iso,
            "ember / raw floor": ember / raw if ember and raw else None,
            "ember / isolated floor": ember / iso if ember and iso else None,
            "isolated / raw floor": iso / raw if iso and raw else None}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['timestamp']} ({results['mode']}: latency {results['warmups']} warm-up + "
        f"{results['rounds']} interleaved rounds, {results['per_round']} fork boots and floor "
        f"requests per round). Machine: {m['os']}, kernel {m['kernel']}, {m['cpus']} × "
        f"{m['cpu_model']}, {m['memory_gib']} GiB, cgroups {m.get('cgroups', '?')}; load average "
        f"{m['loadavg_at_start']:.2f} at "
        f"start, {m.get('loadavg_at_end', float('nan')):.2f} at end.", ""]
    versions = "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items())
    if versions:
        lines += [f"Versions: {versions}.", ""]
    lines += latency_lines(results)
    lines += density_lines(results.get("density", {}))
    lines += burst_lines(results.get("burst", {}))
    if results.get("tool_errors"):
        lines += ["Could not run:", ""]
        lines += [f"* {n}: {_one_line(e)}" for n, e in results["tool_errors"].items()]
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


__all__ = ["BEGIN_MARK", "END_MARK", "FLOOR", "FORK", "ISO_FLOOR", "PLAIN", "burst_rates",
           "markdown", "write_docs"]
