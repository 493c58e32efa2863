"""The benchmark report: medians, ratios to the ceiling, goals, and a real PNG."""

import tempfile
import unittest
from pathlib import Path

from tools.bench import report


def run(rps: float, p50: float = 1.0, p99: float = 5.0, failed: int = 0) -> dict:
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": int(rps * 10),
        "failed": failed,
        "not_connected": 0,
    }


def results(**rps: float) -> dict:
    defaults = {s.name: 1000.0 for s in report.SCENARIOS}
    return {name: report.summarise([run(value)]) for name, value in (defaults | rps).items()}


class SummariseTest(unittest.TestCase):
    def test_median_round_and_errors_of_all_rounds(self) -> None:
        summary = report.summarise([run(300, p99=9), run(100, failed=2), run(200, p99=7, failed=1)])
        self.assertEqual(summary["rps"], 200)
        self.assertEqual(summary["p99_ms"], 7)
        self.assertEqual(summary["errors"], 3)
        self.assertEqual(summary["requests"], 6000)
        self.assertEqual(summary["rounds_rps"], [300, 100, 200])


class GoalsTest(unittest.TestCase):
    def test_goals_against_their_baselines(self) -> None:
        cases = [
            # (rps per scenario, goal name -> met)
            (
                {"ceiling": 10000, "python_nginx_hit": 9500, "go_via_nginx": 7000},
                {"python_nginx_hit": True, "go_via_nginx": False},
            ),
            (
                {"ceiling": 10000, "python_nginx_hit": 8999, "go_via_nginx": 8000},
                {"python_nginx_hit": False, "go_via_nginx": True},
            ),
            (
                {"python_gunicorn": 5000, "python_flask_run": 1000},
                {"python_gunicorn": True},
            ),
            (
                {"python_gunicorn": 4999, "python_flask_run": 1000},
                {"python_gunicorn": False},
            ),
        ]
        for rps, expected in cases:
            measured = results(**rps)
            for goal in report.GOALS:
                if goal.scenario in expected:
                    with self.subTest(rps=rps, goal=goal.name):
                        self.assertEqual(goal.met(measured), expected[goal.scenario])


class RenderTest(unittest.TestCase):
    def test_markdown_has_every_scenario_with_its_ratio(self) -> None:
        table = report.markdown(
            results(ceiling=20000, go_via_nginx=15000), "tools/bazel run //tools/bench", "2 CPUs"
        )
        for scenario in report.SCENARIOS:
            self.assertIn(scenario.label, table)
        self.assertIn("| 15,000 | 0.75 |", table)
        self.assertIn("| Go via Nginx ≥ 0.8 x ceiling | 0.75 | no |", table)
        self.assertIn("`tools/bazel run //tools/bench`", table)

    def test_plot_writes_a_png(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "plot.png"
            report.plot(results(ceiling=20000), "title", path)
            data = path.read_bytes()
        self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertGreater(len(data), 10_000)


if __name__ == "__main__":
    unittest.main()
