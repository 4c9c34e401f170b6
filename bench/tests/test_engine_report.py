"""bench/engine_latency.py's report code on synthetic results: ember-engine-bench's samples
summarized per mode, the daemon-path medians read from a restore result, the ratios, the tables,
the docs section and the suite rows — with a mode that could not run and one cut short.

Run with `python3 -m unittest discover -s bench/tests`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
from peers import engine_daemon, engine_report  # noqa: E402
from peers.report import write_docs  # noqa: E402

MACHINE = {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.18.0", "cpus": 2,
           "cpu_model": "Test CPU", "memory_gib": 23.5, "loadavg_at_start": 0.5,
           "loadavg_at_end": 0.7}


def sample(ms: float, error: str | None = None) -> dict:
    return {"ms": ms, "instance": f"i-{ms}", "error": error,
            "engine_ms": {"sandbox": ms / 2, "init": ms / 4, "queue": ms * 0.9,
                          "handler": 0.5, "total": ms - 0.01}}


def raw_bench() -> dict:
    """Two handlers; the heavy one without a template and with a cold boot that failed."""
    light = {"warm": {"error": None, "samples": [sample(2.0), sample(3.0), sample(4.0)]},
             "cold": {"error": None, "samples": [sample(6.0), sample(7.0), sample(8.0)]},
             "fork": {"error": None, "samples": [sample(1.0), sample(1.5), sample(2.0)]},
             "plain": {"error": None, "samples": [sample(30.0), sample(31.0), sample(32.0)]}}
    heavy = {"warm": {"error": None, "samples": [sample(3.0)]},
             "cold": {"error": "crashed: boom", "samples": [sample(9.0), sample(1.0, "crashed")]},
             "fork": {"error": "no fork template for engine-heavy", "samples": []},
             "plain": {"error": None, "samples": [sample(90.0)]}}
    return {"tool": "ember-engine-bench", "rounds": 3, "warmups": 1,
            "modes": ["warm", "cold", "fork", "plain"],
            "functions": [{"name": "engine-light", "deploy_ms": 150.0, "modes": light},
                          {"name": "engine-heavy", "deploy_ms": 400.0, "modes": heavy}]}


def restore_result() -> dict:
    def entry(med: float) -> dict:
        return {"n": 3, "min_ms": med - 1, "median_ms": med, "p99_ms": med + 1}

    v = {"ember warm boot": entry(4.0), "ember cold boot": entry(10.0),
         "ember fork boot": entry(2.0), "ember plain boot": {"error": "boom", "n": 0}}
    return {"benchmark": "restore", "timestamp": "2026-11-22 01:30:00",
            "latency": {"light": {"variants": v}, "heavy": {"variants": v}}}


def results(results_dir: Path) -> dict:
    engine = engine_report.summarize_engine(raw_bench(), {"engine-light": "light",
                                                          "engine-heavy": "heavy"})
    ref = engine_report.daemon_reference(results_dir)
    return {"benchmark": "engine-latency", "timestamp": "2026-11-22 05:00:00", "mode": "quick",
            "rounds": 3, "warmups": 1, "machine": MACHINE, "engine": engine,
            "daemon_reference": ref, "ratios": engine_report.ratios(engine, ref), "errors": {}}


class EngineReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        (self.dir / "restore-20261122-013000.json").write_text(json.dumps(restore_result()))

    def tearDown(self):
        self.tmp.cleanup()

    def test_summary_per_mode(self):
        e = results(self.dir)["engine"]
        self.assertEqual(e["light"]["modes"]["warm"]["median_ms"], 3.0)
        self.assertEqual(e["light"]["modes"]["fork"]["n"], 3)
        self.assertAlmostEqual(e["light"]["phases"]["warm"]["sandbox"], 1.5)
        # A mode that never ran carries why; one cut short keeps its good samples and the cause.
        self.assertEqual(e["heavy"]["modes"]["fork"]["n"], 0)
        self.assertIn("no fork template", e["heavy"]["modes"]["fork"]["error"])
        self.assertEqual(e["heavy"]["modes"]["cold"]["n"], 1)
        self.assertEqual(e["heavy"]["modes"]["cold"]["stopped_by"], "crashed: boom")

    def test_ratios_against_the_daemon(self):
        r = results(self.dir)
        self.assertEqual(r["daemon_reference"]["file"], "restore-20261122-013000.json")
        light = r["ratios"]["light"]
        self.assertAlmostEqual(light["warm"]["ratio"], 0.75)
        self.assertAlmostEqual(light["warm"]["api_ms"], 1.0)
        self.assertAlmostEqual(light["cold"]["ratio"], 0.7)
        self.assertIsNone(light["plain"]["ratio"])  # the daemon's plain boot failed
        self.assertIsNone(r["ratios"]["heavy"]["fork"]["ratio"])  # the engine's did not run

    def test_daemon_path_in_this_run(self):
        ref = {"source": "this run", "kinds": {"light": {"warm": 4.0, "fork": 2.5}},
               "in_request": {"light": {"warm": 0.4, "fork": 0.3}}}
        r = dict(results(self.dir), daemon_reference=ref)
        r["ratios"] = engine_report.ratios(r["engine"], ref)
        self.assertAlmostEqual(r["ratios"]["light"]["fork"]["ratio"], 0.6)
        self.assertEqual(r["ratios"]["light"]["fork"]["in_request_api_ms"], 0.3)
        md = engine_report.markdown(r)
        self.assertIn("measured in this run", md)
        self.assertIn("| fork | 3 | 1.00 | 1.50 | 2.00 | 2.50 | 0.60 | 1.00 | 0.30 |", md)

    def test_in_request_api_ms(self):
        self.assertAlmostEqual(engine_daemon.in_request_api_ms(
            {"mean": {"client": 5.5, "total": 5.0}}), 0.5)
        self.assertIsNone(engine_daemon.in_request_api_ms({"mean": {"total": 5.0}}))
        self.assertIsNone(engine_daemon.in_request_api_ms(None))

    def test_no_daemon_reference(self):
        ref = engine_report.daemon_reference(self.dir / "none")
        self.assertIn("error", ref)
        md = engine_report.markdown(dict(results(self.dir), daemon_reference=ref))
        self.assertIn("Through the daemon: no figures", md)

    def test_markdown_tables(self):
        md = engine_report.markdown(results(self.dir))
        self.assertIn("**light handler** (`engine-light`)", md)
        self.assertIn("| warm | 3 | 2.00 | 3.00 | 4.00 | 4.00 | 0.75 | 1.00 | — |", md)
        self.assertIn("| fork | 0 | failed: no fork template for engine-heavy |", md)
        self.assertIn("restore-20261122-013000.json", md)
        self.assertIn("load average 0.50 → 0.70", md)
        self.assertLess(md.index("| warm |"), md.index("| plain |"))

    def test_docs_section(self):
        doc = self.dir / "benchmarks.md"
        doc.write_text(f"# B\n\nbefore\n{engine_report.BEGIN_MARK}\nold\n"
                       f"{engine_report.END_MARK}\nafter\n")
        write_docs(engine_report.markdown(results(self.dir)), doc, engine_report.BEGIN_MARK,
                   engine_report.END_MARK)
        text = doc.read_text()
        self.assertNotIn("\nold\n", text)
        self.assertIn("| cold | 3 |", text)
        self.assertTrue(text.startswith("# B\n\nbefore\n"))
        self.assertTrue(text.endswith(f"{engine_report.END_MARK}\nafter\n"))

    def test_suite_rows(self):
        r = results(self.dir)
        path = self.dir / "engine-latency-20261122-050000.json"
        path.write_text(json.dumps(r))
        loaded = report.load_engine(None, self.dir)
        self.assertEqual(loaded[0], path)
        suite, _ = report.build({}, self.dir, stamp="20261122-050001", engine=loaded)
        rows = suite["benchmarks"]["engine-latency"]["rows"]
        self.assertEqual(rows[0]["value"], "3.00 / 7.00 / 1.50 / 31.00 ms")
        self.assertEqual(rows[1]["value"], "0.75 / 0.70 / 0.75 / —")
        md = report.markdown(suite, self.dir / "img")
        self.assertIn("engine-direct / daemon p50, warm / cold / fork / plain (light)", md)
        self.assertIn("`engine-latency-20261122-050000.json`", md)


if __name__ == "__main__":
    unittest.main()
