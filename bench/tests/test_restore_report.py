"""bench/restore_boot.py's report code on synthetic results: the targets and ratios, the tables,
the docs section, the suite rows, the plot — with a CRIU peer that failed, as Debian's does here.

Run with `python3 -m unittest discover -s bench/tests` (the plot test skips without matplotlib).
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from peers import restore_report  # noqa: E402
from peers.restore_latency import checks  # noqa: E402

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False

MACHINE = {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.18.0", "cpus": 2,
           "cpu_model": "Test CPU", "memory_gib": 23.5, "loadavg_at_start": 0.5,
           "loadavg_at_end": 0.7, "versions": {"runsc": "runsc 0.0~20221219.0"}}
CRIU_ERROR = ("criu dump: exit status 1: vdso: Unexpected rt vDSO area bounds; vdso: Failed to "
              "fill self vdso symtable")


def entry(lo: float, med: float, p99: float, n: int = 3) -> dict:
    return {"n": n, "min_ms": lo, "median_ms": med, "p99_ms": p99, "samples_ms": [lo, med, p99]}


def variants(k: float = 1.0, criu: dict | None = None) -> dict:
    return {"ember warm boot": entry(1.8 * k, 2.0 * k, 3.1 * k),
            "ember cold boot": entry(5.0 * k, 6.0 * k, 9.0 * k),
            "ember fork boot": entry(1.5, 1.6, 2.2),
            "ember plain boot": entry(30 * k, 32 * k, 40 * k),
            "runsc restore": dict(entry(170 * k, 180 * k, 230 * k),
                                  exit=entry(200 * k, 210 * k, 260 * k)),
            "runc + CRIU restore": {"error": "runc checkpoint: " + CRIU_ERROR, "n": 0},
            "bare CRIU restore": criu or {"error": CRIU_ERROR, "n": 0}}


def restore_result(criu: dict | None = None) -> dict:
    lat = {}
    for kind, k in (("light", 1.0), ("heavy", 1.5)):
        v = variants(k, criu)
        lat[kind] = {"title": f"{kind} Python handler", "function": f"restore-{kind}",
                     "variants": v, "checks": checks(kind, v),
                     "phases": {"ember warm boot": {
                         "n": 3, "median": {"sandbox": 1.2, "init": 0.1},
                         "mean": {"sandbox": 1.3, "init": 0.1, "client": 2.0}}},
                     "snapshot": {"size_bytes": 14 * 2**20, "working_set_pages": 310}}
    return {"benchmark": "restore", "timestamp": "2026-11-22 01:30:00", "mode": "quick",
            "rounds": 8, "warmups": 2, "per_round": 3, "machine": MACHINE, "latency": lat,
            "density": {"function": "restore-light",
                        "warm": {"requested": 50, "started": 50,
                                 "pss_kib": {"mean": 1536.0, "median": 1500, "p99": 1700},
                                 "private_kib": {"mean": 900.0},
                                 "memavailable_drop_kib_per_instance": 2048.0},
                        "fork": {"requested": 50, "started": 50,
                                 "pss_kib": {"mean": 1024.0, "median": 1000, "p99": 1100}},
                        "plain": {"requested": 10, "started": 10,
                                  "pss_kib": {"mean": 5120.0, "median": 5000, "p99": 5300}}},
            "tool_errors": {"bare CRIU restore (light)": CRIU_ERROR}, "warnings": []}


class ChecksTest(unittest.TestCase):
    def test_targets_and_ratios(self):
        c = checks("light", variants())
        self.assertAlmostEqual(c["warm p50 / fork p50"]["value"], 2.0 / 1.6)
        self.assertTrue(c["warm p50 / fork p50"]["met"])
        self.assertAlmostEqual(c["cold p50 / warm p50"]["value"], 3.0)
        self.assertTrue(c["cold p50 / warm p50"]["met"])
        self.assertAlmostEqual(c["runsc restore p50 / warm p50"]["value"], 90.0)
        self.assertAlmostEqual(c["runsc restore p50 / cold p50"]["value"], 30.0)

    def test_failed_criu_is_not_checked_and_says_why(self):
        c = checks("light", variants())["bare CRIU restore p50 / warm p50"]
        self.assertIsNone(c["value"])
        self.assertIsNone(c["met"])
        self.assertIn("vDSO area bounds", c["why"])

    def test_criu_target_when_criu_runs(self):
        slow = checks("light", variants(criu=entry(20, 22.5, 30)))
        self.assertAlmostEqual(slow["bare CRIU restore p50 / warm p50"]["value"], 11.25)
        self.assertFalse(slow["bare CRIU restore p50 / warm p50"]["met"])
        fast = checks("light", variants(criu=entry(40, 45, 50)))
        self.assertTrue(fast["bare CRIU restore p50 / warm p50"]["met"])

    def test_cold_target_only_for_the_light_handler(self):
        heavy = checks("heavy", variants(1.5))
        self.assertEqual(heavy["cold p50 / warm p50"]["target"], "")
        self.assertIsNone(heavy["cold p50 / warm p50"]["met"])


class ReportTest(unittest.TestCase):
    def test_markdown_names_every_variant_and_the_failure(self):
        md = restore_report.markdown(restore_result())
        for text in ("| ember warm boot | 3 | 1.80 | 2.00 | 3.10 | 1.00× | 0.33× |  |",
                     "| runsc restore | 3 | 170 | 180 | 230 | 90.0× | 30.0× | 210 |",
                     "| bare CRIU restore | 0 | – | – | – | failed: criu dump",
                     "* warm p50 / fork p50: 1.25× (target ≤ 1.5: met)",
                     "* cold p50 / warm p50: 3.00× (target ≤ 5: met)",
                     "* bare CRIU restore p50 / warm p50: – (target ≥ 20: not checked (bare "
                     "CRIU restore failed",
                     "* snapshot: 14.0 MiB, 310 working-set pages",
                     "| ember warm boot | 50 | 50 | 1.50 | 1.46 | 1.66 | 0.88 | 2.00 |",
                     "| ember plain boot | 10 | 10 | 5.00 |",
                     "* bare CRIU restore (light): criu dump"):
            self.assertIn(text, md)

    def test_suite_rows(self):
        rows = {r["figure"]: r for r in restore_report.suite_rows(restore_result())}
        self.assertEqual(rows["restore p50 warm / cold / fork (light)"]["value"],
                         "2.00 ms / 6.00 ms / 1.60 ms")
        self.assertTrue(rows["warm p50 / fork p50 (light)"]["met"])
        criu = rows["bare CRIU restore p50 / warm p50 (light)"]
        self.assertIsNone(criu["met"])
        self.assertIn("n/a: bare CRIU restore failed", criu["value"])
        self.assertNotIn("cold p50 / warm p50 (heavy)", rows)  # no target there
        self.assertEqual(rows["PSS per idle instance, warm / fork / plain (50 warm)"]["value"],
                         "1.50 MiB / 1.00 MiB / 5.00 MiB")

    def test_write_docs_appends_the_section_once_then_rewrites_it(self):
        with tempfile.TemporaryDirectory() as t:
            doc = Path(t) / "benchmarks.md"
            doc.write_text("# B\n\n## Other\nkeep\n")
            restore_report.write_docs("first\n", doc)
            text = doc.read_text()
            self.assertTrue(text.startswith("# B\n\n## Other\nkeep\n"))
            self.assertIn("## Restore (cold and warm boot)", text)
            self.assertIn(f"{restore_report.BEGIN_MARK}\nfirst\n{restore_report.END_MARK}", text)
            restore_report.write_docs("second\n", doc)
            again = doc.read_text()
            self.assertEqual(again.count("## Restore (cold and warm boot)"), 1)
            self.assertEqual(again, text.replace("\nfirst\n", "\nsecond\n"))


@unittest.skipUnless(HAVE_MPL, "matplotlib is not installed (apt-get install python3-matplotlib)")
class PlotTest(unittest.TestCase):
    def test_failed_peers_keep_their_place(self):
        from peers.restore_plots import plot_restore, restore_bars
        bars = restore_bars(restore_result())
        self.assertEqual([b[0] for b in bars["light"]],
                         ["ember warm", "ember cold", "ember fork", "ember plain",
                          "runsc restore", "runc + CRIU", "bare CRIU"])
        self.assertEqual(bars["light"][6][1:], (None, None, None))
        with tempfile.TemporaryDirectory() as t:
            out = plot_restore(restore_result(), Path(t) / "restore.png")
            self.assertEqual(out.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_no_figures_is_missing_data(self):
        from peers.plots import MissingData
        from peers.restore_plots import plot_restore
        with tempfile.TemporaryDirectory() as t, self.assertRaises(MissingData):
            plot_restore({"benchmark": "restore", "latency": {}}, Path(t) / "restore.png")


if __name__ == "__main__":
    unittest.main()
