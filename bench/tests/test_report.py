"""bench/plots.py and bench/report.py on synthetic results: files written, figures in the summary.

The benchmarks take minutes and root; these tests feed the same shapes of result dicts the
benchmark scripts write (trimmed to the fields the suite reads) so the plotting and summary
code is checked anywhere, in a temp dir, without a display. Run with
`python3 -m unittest discover -s bench/tests` (the plot tests skip when matplotlib is absent).
"""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402  (bench/report.py)
from peers import suite  # noqa: E402
from test_restore_report import restore_result  # noqa: E402  (its synthetic restore run)

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False

MACHINE = {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0", "cpus": 2,
           "cpu_model": "Test CPU", "memory_gib": 23.5}


def entry(lo: float, med: float, p99: float) -> dict:
    return {"n": 3, "min_ms": lo, "median_ms": med, "p99_ms": p99, "samples_ms": [lo, med, p99]}


def dist(med: float, p99: float, mean: float | None = None) -> dict:
    return {"n": 10, "mean": mean if mean is not None else med, "median": med, "min": med / 2,
            "p99": p99, "max": p99}


def fork_result() -> dict:
    lat = {}
    for h, k in (("light", 1), ("heavy", 3)):
        lat[h] = {"variants": {"ember fork boot": entry(2.3, 2.9, 6.6),
                               "ember plain boot": entry(22 * k, 24 * k, 34 * k),
                               "raw floor (fork server)": entry(0.9, 1.24, 2.9),
                               "crun": entry(21 * k, 24 * k, 29 * k),
                               "runc": {"error": "runc: failed"},
                               "runsc": entry(178, 218, 335)},
                  "checks": {"fork p50 / raw floor p50": {"value": 2.35, "target": "≤ 1.5",
                                                          "met": False},
                             "crun p50 / fork p50": {"value": 8.26 * k, "target": "≥ 15",
                                                     "met": k > 1}}}
    return {"benchmark": "fork-boot", "timestamp": "2026-11-21 22:25:34", "mode": "full",
            "machine": MACHINE, "latency": lat,
            "burst": {"requested": 1000, "ok": 1000, "boots_per_s": 449.3,
                      "boot_ms": dist(1524.2, 2194.45)},
            "density": {"fork": {"requested": 10000, "started": 10000,
                                 "pss_kib": dist(1308, 1372, 1301.07),
                                 "memavailable_drop_kib_per_instance": 1615.0},
                        "plain": {"started": 50, "pss_kib": dist(4956, 4964),
                                  "memavailable_drop_kib_per_instance": 8339.6},
                        "crun": {"measured": True, "containers": 20,
                                 "pss_kib": dist(4070, 4085),
                                 "memavailable_drop_kib_per_instance": 88.8}}}


def invoke_result() -> dict:
    fns = {h: {"variants": {"ember invoke, warm": entry(0.19, 0.24, 5.0),
                            "ember invoke, plain boot": entry(28.6, 39.8, 54.8),
                            "crun": entry(26.8, 55.2, 101.4)}} for h in ("light", "heavy")}
    return {"benchmark": "invoke-latency", "timestamp": "2026-11-21 19:56:18", "mode": "quick",
            "machine": MACHINE, "functions": fns}


def run_result() -> dict:
    light = {"ember": entry(21.4, 22.48, 29.2), "unshare+chroot": entry(17.7, 19.08, 20.6),
             "crun": entry(22.3, 24.32, 30.9)}
    return {"benchmark": "run-vs-peers", "timestamp": "2026-11-21 22:24:03", "mode": "quick",
            "machine": MACHINE, "scenarios": {"python-light": light}}


def micro_result() -> dict:
    return {"context": {"date": "2026-11-21T22:30:00"},
            "benchmarks": [{"name": "BM_FrameEncode", "run_type": "iteration",
                            "real_time": 123.4, "time_unit": "ns"}]}


def write_results(d: Path, with_fork: bool = True) -> None:
    files = {"invoke-latency-20261121-195618.json": invoke_result(),
             "run-vs-peers-20261121-222403.json": run_result(),
             "run-vs-peers-20261121-100000.json": {"benchmark": "run-vs-peers", "old": True},
             "micro-20261121-223000.json": micro_result(),
             "restore-20261122-013000.json": restore_result()}
    if with_fork:
        files["fork-boot-20261121-222534.json"] = fork_result()
    for name, data in files.items():
        (d / name).write_text(json.dumps(data))


class LoadTest(unittest.TestCase):
    def test_newest_of_each_kind(self):
        with tempfile.TemporaryDirectory() as t:
            write_results(Path(t))
            loaded = suite.load(None, Path(t))
            self.assertEqual(set(loaded), set(suite.KINDS))
            self.assertTrue(loaded["run-vs-peers"][0].name.endswith("222403.json"))
            self.assertIn("benchmarks", loaded["micro"][1])

    def test_unreadable_file_is_left_out(self):
        with tempfile.TemporaryDirectory() as t:
            bad = Path(t) / "fork-boot-20261121-000000.json"
            bad.write_text("{not json")
            self.assertEqual(suite.load([bad], Path(t)), {})


@unittest.skipUnless(HAVE_MPL, "matplotlib is not installed (apt-get install python3-matplotlib)")
class PlotsTest(unittest.TestCase):
    def test_all_plots_are_written(self):
        import plots  # bench/plots.py
        with tempfile.TemporaryDirectory() as t:
            write_results(Path(t))
            written, skipped = plots.draw_all(suite.load(None, Path(t)), Path(t) / "img")
            self.assertEqual(skipped, [])
            self.assertEqual(sorted(p.name for p in written),
                             ["burst.png", "density.png", "latency.png", "restore.png"])
            for p in written:
                self.assertEqual(p.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_missing_fork_boot_skips_density_and_burst_only(self):
        import plots
        with tempfile.TemporaryDirectory() as t:
            write_results(Path(t), with_fork=False)
            written, skipped = plots.draw_all(suite.load(None, Path(t)), Path(t) / "img")
            # latency from invoke-latency, restore from its own result
            self.assertEqual([p.name for p in written], ["latency.png", "restore.png"])
            self.assertEqual(len(skipped), 2)
            self.assertTrue(all("fork-boot" in s for s in skipped), skipped)

    def test_failed_peer_has_no_bar(self):
        from peers.plots import latency_bars
        bars = latency_bars(fork_result(), invoke_result())
        labels = [b[0] for b in bars["light"]]
        self.assertEqual(labels, ["ember warm", "ember plain", "ember fork", "raw floor", "crun",
                                  "runsc"])


class ReportTest(unittest.TestCase):
    def test_suite_record_and_summary(self):
        with tempfile.TemporaryDirectory() as t:
            write_results(Path(t))
            rec, path = report.build(suite.load(None, Path(t)), Path(t), stamp="20261121-230000")
            self.assertEqual(path.name, "suite-20261121-230000.json")
            on_disk = json.loads(path.read_text())
            self.assertEqual(on_disk["machine"]["cpu_model"], "Test CPU")
            self.assertEqual(on_disk["missing"], [])
            md = report.markdown(rec)
        for figure in ("Test CPU, 2 CPUs", "2.35×", "8.3×", "10000 of 10000", "1.27 MiB",
                       "| burst of 1000: boots/s | 449 | ≥ 1,000 | **NOT met** |",
                       "2194.45 ms", "22.48 ms vs 19.08 ms", "0.24 ms / 39.80 ms",
                       "`BM_FrameEncode` 123 ns", "![latency per boot mode against the peers]"
                       "(img/latency.png)", "(img/burst.png)", "(img/restore.png)",
                       "| warm p50 / fork p50 (light) | 1.25× | ≤ 1.5 | yes |"):
            self.assertIn(figure, md)

    def test_missing_benchmark_is_named_and_images_only_if_drawn(self):
        with tempfile.TemporaryDirectory() as t:
            write_results(Path(t), with_fork=False)
            rec, _ = report.build(suite.load(None, Path(t)), Path(t))
            (Path(t) / "img").mkdir()
            (Path(t) / "img" / "latency.png").write_bytes(b"png")
            md = report.markdown(rec, Path(t) / "img")
        self.assertIn("| fork-boot | not run (no result file) |", md)
        self.assertIn("(img/latency.png)", md)
        self.assertNotIn("density.png", md)

    def test_write_section_touches_only_the_markers(self):
        with tempfile.TemporaryDirectory() as t:
            doc = Path(t) / "benchmarks.md"
            doc.write_text(f"# B\n\n{report.BEGIN_MARK}\nold\n{report.END_MARK}\n\n## Other\nkeep\n")
            report.write_section("new body\n", doc)
            self.assertEqual(doc.read_text(), f"# B\n\n{report.BEGIN_MARK}\nnew body\n"
                                              f"{report.END_MARK}\n\n## Other\nkeep\n")
            doc.write_text("no markers here\n")
            with self.assertRaises(ValueError):
                report.write_section("x\n", doc)


if __name__ == "__main__":
    unittest.main()
