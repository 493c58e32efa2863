"""The benchmark report: its arithmetic, its tables and plot, and the recorded run's shape and
generator headroom (docs/bench/results.json). Never the machine's speed: that is the benchmark's."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tools.dev.bench import report


def run(rps: float, p99: float = 5.0, failed: int = 0, **cpu_us_per_request: float) -> dict:
    requests = int(rps * 10)
    return {
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": p99,
        "requests": requests,
        "failed": failed,
        "not_connected": 0,
        "cpu_ns": {k: int(v * 1000 * requests) for k, v in cpu_us_per_request.items()},
    }


def results(**rps: float) -> dict[str, dict[str, Any]]:
    chosen = {s.name: 1000.0 for s in report.SCENARIOS} | rps
    cpu = {"nginx": 20.0, report.GENERATOR: 10.0, report.MACHINE: 60.0}
    direct = {name: report.summarise([run(value, **cpu)]) for name, value in chosen.items()}
    for summary in direct.values():
        summary["fixed_rate"] = {
            "offered_rps": summary["rps"] / 2,
            "rps": summary["rps"] / 2,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "max_ms": 3.0,
            "errors": 0,
        }
    published = {
        s.name: report.summarise([run(500, **cpu)])
        for s, p in report.scenario_paths()
        if p == report.PUBLISHED
    }
    return {report.DIRECT: direct, report.PUBLISHED: published}


def test_summary_is_the_median_round_with_errors_and_cpu_over_all_rounds() -> None:
    summary = report.summarise(
        [
            run(300, p99=9, nginx=10),
            run(100, failed=2, nginx=40),
            run(200, p99=7, failed=1, nginx=10),
        ]
    )
    assert (summary["rps"], summary["p99_ms"], summary["errors"]) == (200, 7, 3)
    assert summary["requests"] == 6000
    # (10 * 3000 + 40 * 1000 + 10 * 2000) µs over 6000 requests
    assert summary["cpu_us"] == {"nginx": 15.0}


def test_cpu_is_none_when_a_round_could_not_read_it() -> None:
    rounds = [run(100, nginx=10), run(100, nginx=10)]
    rounds[1]["cpu_ns"][report.MACHINE] = None
    rounds[0]["cpu_ns"][report.MACHINE] = 5
    assert report.summarise(rounds)["cpu_us"][report.MACHINE] is None


@pytest.mark.parametrize(
    ("rps", "goal", "met"),
    [
        ({"python_nginx_hit": 700}, "/python/time Nginx HIT", True),
        ({"python_nginx_hit": 699}, "/python/time Nginx HIT", False),
        ({"go_via_nginx": 500}, "/go/time through Nginx", True),
        ({"go_via_nginx": 499}, "/go/time through Nginx", False),
        ({"python_gunicorn": 300, "python_flask_run": 100}, "gunicorn ≥ 3", True),
        ({"python_gunicorn": 299, "python_flask_run": 100}, "gunicorn ≥ 3", False),
    ],
)
def test_goals_against_their_baselines(rps: dict[str, float], goal: str, met: bool) -> None:
    measured = results(**{k: float(v) for k, v in rps.items()})
    (chosen,) = [g for g in report.GOALS if g.name.startswith(goal)]
    assert chosen.met(measured) is met


def test_p99_goal_is_an_upper_bound() -> None:
    measured = results()
    goal = next(g for g in report.GOALS if g.measure == "p99_ms")
    measured[report.DIRECT]["python_gunicorn"]["p99_ms"] = 10.0
    measured[report.DIRECT]["python_flask_run"]["p99_ms"] = 20.0
    assert goal.met(measured)
    measured[report.DIRECT]["python_gunicorn"]["p99_ms"] = 21.0
    assert not goal.met(measured)


def test_markdown_lists_every_scenario_path_goal_and_cpu() -> None:
    table = report.markdown(results(), "tools/bazel run //tools/dev/bench", "2 CPUs")
    for scenario, path in report.scenario_paths():
        assert any(scenario.label in line and f"| {path} |" in line for line in table.splitlines())
    for goal in report.GOALS:
        assert goal.name in table
    assert "generator 10, Nginx 20, machine 60" in table
    assert "Nginx spent 2.0 x the generator's CPU" in table


def test_plot_writes_a_png() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "results.png"
        report.plot(results(), "title", path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(Path(os.environ["BENCH_RESULTS"]).read_text())


def test_recorded_run_has_every_scenario_on_every_path(recorded: dict[str, Any]) -> None:
    assert recorded["command"].startswith("tools/bazel run //tools/dev/bench")
    for scenario, path in report.scenario_paths():
        result = recorded["results"][path][scenario.name]
        assert result["rps"] > 0, (scenario.name, path)
        assert result["requests"] > 0, (scenario.name, path)
        assert 0 < result["p50_ms"] <= result["p99_ms"], (scenario.name, path)
        for service in (report.GENERATOR, *scenario.services):
            assert result["cpu_us"][service] > 0, (scenario.name, path, service)
        if path == report.DIRECT:
            fixed = result["fixed_rate"]
            # The open-loop generator kept (nearly) the rate it was asked for: its latencies are
            # the stack's, not its own queue's.
            assert fixed["rps"] >= 0.9 * fixed["offered_rps"], (scenario.name, fixed)


def test_recorded_generator_had_headroom_at_the_ceiling(recorded: dict[str, Any]) -> None:
    # The generator spent less CPU per request than the Nginx it measured.
    assert report.generator_headroom(recorded["results"]) > 1.0
