"""The isolation floors on synthetic results: unshare+overlay+cgroup and full mandate (C) in
run-vs-peers' report and the suite, the isolated fork floor in fork-boot's checks, burst lines and the suite, and the
command lines both floors are started with (nothing here needs root or touches a cgroup).
"""

from __future__ import annotations

import os
import sys
import tempfile
import unittest
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from peers import fork_report, report, suite  # noqa: E402
from peers.floor_cgroup import FloorCgroup, floor_cgroup_path  # noqa: E402
from peers.fork_floor import FloorServer  # noqa: E402
from peers.fork_latency import FLOOR, FORK, ISO_FLOOR, checks  # noqa: E402
from peers.tools import (FullFloor, IsoFloor, seccomp_filter_named,  # noqa: E402
                         proc_mask_args)

MACHINE = {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0", "cpus": 2,
           "cpu_model": "Test CPU", "memory_gib": 23.5, "cgroups": "v1",
           "loadavg_at_start": 1.0, "loadavg_at_end": 1.5}


def entry(med: float) -> dict:
    return {"n": 3, "min_ms": med - 1, "median_ms": med, "p99_ms": med + 2}


def run_result(iso: dict | None) -> dict:
    light = {"ember": entry(22.8), "unshare+chroot": entry(19.3), "crun": entry(24.0)}
    if iso is not None:
        light["unshare+overlay+cgroup"] = iso
    return {"benchmark": "run-vs-peers", "timestamp": "2026-11-22 11:00:00", "mode": "quick",
            "warmups": 3, "iterations": 15, "machine": MACHINE,
            "scenarios": {"python-light": light}, "tool_errors": {}}


class RunVsPeersFloor(unittest.TestCase):
    def test_gaps_of_medians(self):
        gaps = report.floor_gaps(run_result(entry(21.0))["scenarios"]["python-light"])
        self.assertAlmostEqual(gaps["ember - unshare+chroot"], 3.5)
        self.assertAlmostEqual(gaps["ember - floor with the mandated rootfs and cgroup"], 1.8)
        self.assertAlmostEqual(gaps["mandated rootfs and cgroup - unshare+chroot"], 1.7)

    def test_failed_floor_has_no_gap(self):
        gaps = report.floor_gaps(run_result({"error": "no cc", "n": 0})
                                 ["scenarios"]["python-light"])
        self.assertIsNone(gaps["ember - floor with the mandated rootfs and cgroup"])
        self.assertAlmostEqual(gaps["ember - unshare+chroot"], 3.5)

    def test_markdown_has_the_floor_line_and_target_text(self):
        results = run_result(entry(21.0))
        results["target"] = report.check_target(results)
        self.assertIn("ember − floor with the mandated rootfs and cgroup +1.8 ms",
                      results["target"]["text"])
        self.assertFalse(results["target"]["met"])  # 22.8 > 19.3 + 1: the floor changes nothing
        md = report.markdown(results)
        self.assertIn("ember − floor with the mandated rootfs and cgroup", md)
        self.assertIn("| light Python handler | +3.5 | +1.8 | +1.7 |", md)

    def test_markdown_without_the_floor_has_no_floor_table(self):
        results = run_result(None)
        results["target"] = report.check_target(results)
        self.assertNotIn("Isolation floors", report.markdown(results))
        self.assertNotIn("mandated", results["target"]["text"])

    def test_suite_row(self):
        rows = {r["figure"]: r for r in suite.run_rows(run_result(entry(21.0)))}
        row = rows["ember run p50 − floor with the mandated rootfs and cgroup (light)"]
        self.assertEqual(row["value"], "22.80 ms − 21.00 ms = +1.80 ms")
        self.assertIsNone(row["met"])
        self.assertNotIn("ember run p50 − floor with the mandated rootfs and cgroup (light)",
                         {r["figure"] for r in suite.run_rows(run_result(None))})

    def test_iso_floor_argv(self):
        with tempfile.TemporaryDirectory() as tmp:
            tool = IsoFloor("/img", Path(tmp), "/ember-bench/sh-1")
            argv = tool.argv(["/bin/true"], "x-1")
        self.assertEqual(argv[:7], ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts",
                                    "--fork"])
        self.assertEqual(argv[8:12], ["/img", f"{tmp}/isofloor/layer", f"{tmp}/isofloor/root",
                                      "64M"])
        self.assertEqual(argv[-2:], ["--", "/bin/true"])
        self.assertEqual(len(argv), 12 + len(tool.cgroup.procs_files()) + 2)


def with_full(iso: dict | None, full: dict | None) -> dict:
    results = run_result(iso)
    if full is not None:
        results["scenarios"]["python-light"]["full mandate (C)"] = full
    return results


class FullMandateFloor(unittest.TestCase):
    def test_gaps_of_medians(self):
        gaps = report.floor_gaps(with_full(entry(21.0), entry(21.5))["scenarios"]["python-light"])
        self.assertAlmostEqual(gaps["ember - full mandate (C)"], 1.3)
        self.assertAlmostEqual(gaps["full mandate - unshare+chroot"], 2.2)
        self.assertAlmostEqual(gaps["ember - floor with the mandated rootfs and cgroup"], 1.8)

    def test_failed_or_missing_full_floor_has_no_gap(self):
        for full in ({"error": "no seccomp filter", "n": 0}, None):
            gaps = report.floor_gaps(with_full(entry(21.0), full)["scenarios"]["python-light"])
            self.assertIsNone(gaps["ember - full mandate (C)"])
            self.assertIsNone(gaps["full mandate - unshare+chroot"])

    def test_markdown_adds_two_columns(self):
        results = with_full(entry(21.0), entry(21.5))
        results["target"] = report.check_target(results)
        md = report.markdown(results)
        self.assertIn("| scenario | ember − unshare+chroot | ember − floor with the mandated rootfs "
                      "and cgroup | rootfs and cgroup − unshare+chroot | ember − full mandate (C) "
                      "| full mandate − unshare+chroot |\n| --- | ---: | ---: | ---: | ---: | ---: |",
                      md)
        self.assertIn("| light Python handler | +3.5 | +1.8 | +1.7 | +1.3 | +2.2 |", md)
        self.assertIn("ember − full mandate (C) +1.3 ms (that floor 21.5)",
                      results["target"]["text"])

    def test_markdown_without_the_full_floor_keeps_the_old_table(self):
        results = run_result(entry(21.0))
        results["target"] = report.check_target(results)
        md = report.markdown(results)
        self.assertIn("| rootfs and cgroup − unshare+chroot |\n| --- | ---: | ---: | ---: |\n"
                      "| light Python handler | +3.5 | +1.8 | +1.7 |\n", md)
        self.assertNotIn("full mandate", md)

    def test_markdown_with_only_the_full_floor(self):
        results = with_full(None, entry(21.5))
        results["target"] = report.check_target(results)
        self.assertIn("| light Python handler | +3.5 | – | – | +1.3 | +2.2 |",
                      report.markdown(results))
        results = with_full(None, {"error": "exit status 125", "n": 0})
        results["target"] = report.check_target(results)
        self.assertIn("| light Python handler | +3.5 | – | – | – | – |",
                      report.markdown(results))
        self.assertNotIn("full mandate", results["target"]["text"])

    def test_suite_row(self):
        rows = {r["figure"]: r for r in suite.run_rows(with_full(entry(21.0), entry(21.5)))}
        row = rows["ember run p50 − full mandate floor (C) (light)"]
        self.assertEqual(row["value"], "22.80 ms − 21.50 ms = +1.30 ms")
        self.assertIsNone(row["met"])
        failed = with_full(None, {"error": "x", "n": 0})
        self.assertEqual({r["figure"]: r for r in suite.run_rows(failed)}
                         ["ember run p50 − full mandate floor (C) (light)"]["value"],
                         "22.80 ms − n/a = n/a")
        self.assertNotIn("ember run p50 − full mandate floor (C) (light)",
                         {r["figure"] for r in suite.run_rows(run_result(None))})

    def test_argv(self):
        with tempfile.TemporaryDirectory() as tmp:
            tool = FullFloor("/bin/ember", "python3.11", "/img", Path(tmp), "/ember-bench/sh-1")
            tool.proc_masks = ["keys,kallsyms", "-", "sys,fs"]
            tool.cap_last_cap = "40"
            tool.scratch = Path("/run/ember-bench-fullfloor-x")
            argv = tool.argv(["/bin/true"], "x-1")
        self.assertEqual(argv[:8], [f"{tmp}/fullfloor/fullfloor-exec",
                                    f"{tmp}/fullfloor/strict.bpf", "/img",
                                    "/run/ember-bench-fullfloor-x/staging", "40",
                                    "keys,kallsyms", "-", "sys,fs"])
        self.assertEqual(argv[8:-2], tool.cgroup.procs_files())
        self.assertEqual(argv[-2:], ["--", "/bin/true"])
        self.assertIn("/fullfloor-", tool.cgroup.procs_files()[0])
        self.assertEqual(tool.key, "fullfloor")

    def test_proc_masks_only_what_the_kernel_has(self):
        with tempfile.TemporaryDirectory() as proc:
            for name in ("keys", "kallsyms", "sys", "irq"):
                os.mkdir(os.path.join(proc, name))
            open(os.path.join(proc, "config.gz"), "w").close()
            self.assertEqual(proc_mask_args(proc), ["keys,kallsyms,config.gz", "-", "sys,irq"])

    def test_seccomp_filter_named_by_ember_run_v(self):
        err = ("ember: seccomp filter /run/ember/seccomp/22b006af88a1c40a.bpf (444 instructions)\n"
               "ember: host side (us): store 67, image mount 36\n")
        self.assertEqual(seccomp_filter_named(err),
                         Path("/run/ember/seccomp/22b006af88a1c40a.bpf"))
        self.assertIsNone(seccomp_filter_named("ember: host side (us): store 67\n"))


class CgroupPaths(unittest.TestCase):
    def test_v1_one_dir_per_controller(self):
        cg = FloorCgroup("ember-bench/sh-1/isofloor-7")
        cg.v2 = False
        self.assertEqual(cg.procs_files(), [
            f"/sys/fs/cgroup/{c}/ember-bench/sh-1/isofloor-7/cgroup.procs"
            for c in ("memory", "cpu", "pids")])

    def test_v2_one_dir(self):
        cg = FloorCgroup("/ember-bench/x/")
        cg.v2 = True
        self.assertEqual(cg.procs_files(), ["/sys/fs/cgroup/ember-bench/x/cgroup.procs"])

    def test_path_is_under_the_parent(self):
        self.assertTrue(floor_cgroup_path("/ember-bench/sh-1", "isofloor")
                        .startswith("ember-bench/sh-1/isofloor-"))


class IsolatedForkFloor(unittest.TestCase):
    def test_server_argv(self):
        with tempfile.TemporaryDirectory() as tmp:
            raw = FloorServer("/usr/bin/python3.11", "x = 1\n", Path(tmp), "light")
            iso = FloorServer("/usr/bin/python3.11", "x = 1\n", Path(tmp), "light",
                              lower="/img", cgroup_parent="/ember-bench/t")
            self.assertNotIn("--isolate", raw.server_argv())
            argv = iso.server_argv()
            self.assertNotEqual(raw.dir, iso.dir)
        self.assertIn("--isolate", argv)
        self.assertEqual(argv[argv.index("--lower") + 1], "/img")
        self.assertEqual(argv.count("--cgroup-procs"), len(iso.cgroup.procs_files()))

    def test_checks(self):
        summary = {FORK: entry(6.0), FLOOR: entry(3.0), ISO_FLOOR: entry(4.0)}
        c = checks("light", summary)
        self.assertAlmostEqual(c["fork p50 / isolated floor p50"]["value"], 1.5)
        self.assertAlmostEqual(c["isolated floor p50 / raw floor p50"]["value"], 4 / 3)
        self.assertIsNone(c["fork p50 / isolated floor p50"]["met"])  # no target
        self.assertFalse(c["fork p50 / raw floor p50"]["met"])
        self.assertNotIn("fork p50 / isolated floor p50",
                         checks("light", {FORK: entry(6.0), FLOOR: entry(3.0)}))

    def burst(self) -> dict:
        return {"requested": 1000, "ok": 1000, "wall_ms": 2000.0, "boots_per_s": 500.0,
                "failures": {}, "boot_ms": {"median": 3.0, "p99": 9.0},
                "floor": {"requested": 1000, "ok": 1000, "wall_ms": 860.0, "forks_per_s": 1165.0},
                "isolated_floor": {"requested": 1000, "ok": 1000, "wrong": 0,
                                   "wall_ms": 1600.0, "forks_per_s": 625.0}}

    def test_burst_rates(self):
        r = fork_report.burst_rates(self.burst())
        self.assertEqual((r["ember"], r["raw floor"], r["isolated floor"]), (500.0, 1165.0, 625.0))
        self.assertAlmostEqual(r["ember / isolated floor"], 0.8)
        self.assertAlmostEqual(r["isolated / raw floor"], 625 / 1165)
        b = self.burst()
        b["isolated_floor"] = {"error": "no cgroup", "requested": 1000}
        self.assertIsNone(fork_report.burst_rates(b)["ember / isolated floor"])

    def test_burst_lines(self):
        text = "\n".join(fork_report.burst_lines(self.burst()))
        self.assertIn("= 625 forks/s", text)
        self.assertIn("boots/s, ember / raw floor / isolated floor: 500 / 1165 / 625; "
                      "ember / isolated floor 0.80×, isolated / raw floor 0.54×", text)
        b = self.burst()
        b["isolated_floor"] = {"error": "unshare: EPERM", "requested": 1000}
        self.assertIn("isolated floor burst: failed: unshare: EPERM",
                      "\n".join(fork_report.burst_lines(b)))

    def test_floor_bursts_shown_when_ember_failed(self):
        b = self.burst()
        b = {"error": "ember daemon: agent missing", "requested": 1000,
             "floor": b["floor"], "isolated_floor": b["isolated_floor"]}
        text = "\n".join(fork_report.burst_lines(b))
        self.assertIn("**Burst**: failed: ember daemon: agent missing", text)
        self.assertIn("= 1165 forks/s\n", text + "\n")  # no "ember reaches 0.00×"
        self.assertIn("boots/s, ember / raw floor / isolated floor: – / 1165 / 625; "
                      "ember / isolated floor –, isolated / raw floor 0.54×", text)
        rows = {r["figure"]: r for r in suite.fork_rows({"burst": b})}
        self.assertEqual(rows["burst of 1000: isolated fork floor forks/s (ember / floor)"]
                         ["value"], "625 (n/a)")

    def test_suite_rows(self):
        lat = {"variants": {FORK: entry(6.0), FLOOR: entry(3.0), ISO_FLOOR: entry(4.0)}}
        lat["checks"] = checks("light", lat["variants"])
        rows = {r["figure"]: r for r in suite.fork_rows({"latency": {"light": lat},
                                                          "burst": self.burst()})}
        self.assertEqual(rows["fork p50 / isolated floor p50 (light)"]["value"],
                         "6.00 ms / 4.00 ms = 1.50×")
        self.assertEqual(rows["burst of 1000: isolated fork floor forks/s (ember / floor)"]
                         ["value"], "625 (0.80×)")


if __name__ == "__main__":
    unittest.main()
