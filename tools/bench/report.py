"""The benchmark's results as a Markdown table, a PNG plot and the goals they meet or miss.

Each scenario is reported as a ratio to the ceiling measured in the same run (Nginx answering a
fixed body itself): absolute requests/s drift with the machine, ratios much less.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CEILING = "ceiling"


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    path: str
    via: str  # the route the requests take, for the table
    origin: str = "nginx"  # where path is sent: "nginx" (:80) or "redis" (the Redis variant, :8001)


@dataclass(frozen=True)
class Goal:
    name: str
    scenario: str
    baseline: str  # the scenario the ratio is taken against
    at_least: float

    def ratio(self, results: dict[str, dict[str, Any]]) -> float:
        return results[self.scenario]["rps"] / results[self.baseline]["rps"]

    def met(self, results: dict[str, dict[str, Any]]) -> bool:
        return self.ratio(results) >= self.at_least


SCENARIOS = (
    Scenario(CEILING, "Nginx fixed body (ceiling)", "/bench/ceiling", "Nginx `return 200`"),
    Scenario("python_nginx_hit", "/python/time, Nginx cache HIT", "/python/time", "Nginx cache"),
    Scenario("go_via_nginx", "/go/time, Go in-process cache", "/go/time", "Nginx → Go"),
    Scenario(
        "python_gunicorn",
        "/python/time uncached, gunicorn",
        "/bench/python-uncached/time",
        "Nginx (no cache) → gunicorn",
    ),
    Scenario(
        "python_flask_run",
        "/python/time uncached, `flask run`",
        "/bench/flask-run/time",
        "Nginx (no cache) → flask run",
    ),
    Scenario(
        "python_redis",
        "/time, Redis variant",
        "/time",
        "gunicorn + Redis, via Nginx :8001",
        origin="redis",
    ),
)

GOALS = (
    Goal("Nginx-cache HIT ≥ 0.9 x ceiling", "python_nginx_hit", CEILING, 0.9),
    Goal("Go via Nginx ≥ 0.8 x ceiling", "go_via_nginx", CEILING, 0.8),
    Goal("gunicorn ≥ 5 x flask run", "python_gunicorn", "python_flask_run", 5.0),
)


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario over its rounds: the median round by requests/s, errors summed over all."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    median = ordered[len(ordered) // 2]
    return {
        "rps": median["rps"],
        "p50_ms": median["p50_ms"],
        "p99_ms": median["p99_ms"],
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["failed"] + r["not_connected"] for r in rounds),
        "rounds_rps": [round(r["rps"], 1) for r in rounds],
    }


def markdown(results: dict[str, dict[str, Any]], command: str, setup: str) -> str:
    ceiling = results[CEILING]["rps"]
    lines = [
        f"Command: `{command}`  ",
        f"Setup: {setup}",
        "",
        "| Scenario | Route | req/s | x ceiling | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        r = results[scenario.name]
        lines.append(
            f"| {scenario.label} | {scenario.via} | {r['rps']:,.0f} | {r['rps'] / ceiling:.2f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines += ["", "| Goal | Measured | Met |", "|---|---:|---|"]
    for goal in GOALS:
        lines.append(
            f"| {goal.name} | {goal.ratio(results):.2f} | {'yes' if goal.met(results) else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ceiling = results[CEILING]["rps"]
    labels = [s.label.replace("`", "") for s in SCENARIOS]
    ratios = [results[s.name]["rps"] / ceiling for s in SCENARIOS]
    figure, axes = plt.subplots(figsize=(9, 4.2), dpi=110)
    bars = axes.barh(labels[::-1], ratios[::-1], color="#4878a8")
    for bar, scenario in zip(bars, SCENARIOS[::-1], strict=True):
        r = results[scenario.name]
        axes.text(
            bar.get_width() + 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{r['rps']:,.0f} req/s, p99 {r['p99_ms']:.1f} ms",
            va="center",
            fontsize=8,
        )
    for goal in GOALS:
        if goal.baseline == CEILING:
            axes.axvline(goal.at_least, color="#b04040", linestyle=":", linewidth=1)
    axes.set_xlim(0, max(1.0, max(ratios)) * 1.45)
    axes.set_xlabel("requests/s as a fraction of the ceiling (same run)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
