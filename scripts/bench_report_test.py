"""Tests of scripts/bench_report.py: `python3 -m unittest discover -s scripts -p '*_test.py'`."""

import unittest

import bench_report


def row(step, wall, note="", **more):
    base = {"step": step, "tool": "ours", "wall": wall, "cpu": 2 * wall, "rss": 10.0,
            "server_rss": None, "stored": 100, "new": None, "note": note}
    base.update(more)
    return base


class MedianRows(unittest.TestCase):
    def test_one_run_is_reported_as_it_is(self):
        rows = [row("first backup", 3.0, "n")]
        self.assertIs(bench_report.median_rows([rows]), rows)

    def test_each_measurement_is_its_median_and_the_note_is_the_median_run_s(self):
        runs = [[row("first backup", 5.0, "slow", rss=30.0)],
                [row("first backup", 3.0, "fast", rss=10.0)],
                [row("first backup", 4.0, "middle", rss=40.0)]]
        [merged] = bench_report.median_rows(runs)
        self.assertEqual(merged["wall"], 4.0)
        self.assertEqual(merged["cpu"], 8.0)
        self.assertEqual(merged["rss"], 30.0)
        self.assertIsNone(merged["server_rss"])
        self.assertEqual(merged["note"], "middle; wall 3.00-5.00 s in 3 runs")

    def test_a_failed_run_is_reported_whatever_the_others(self):
        failed = [{"step": "FAILED", "tool": "ours", "failed": True, "note": "boom"}]
        runs = [[row("first backup", 3.0)], failed, [row("first backup", 4.0)]]
        self.assertIs(bench_report.median_rows(runs), failed)

    def test_runs_with_different_steps_are_refused(self):
        runs = [[row("first backup", 3.0)], [row("restore", 3.0)]]
        with self.assertRaises(ValueError):
            bench_report.median_rows(runs)


if __name__ == "__main__":
    unittest.main()
