"""The benchmark's scenarios, goals and results: a Markdown table, a PNG plot and a JSON record.

Throughput is reported as a ratio to the ceiling measured in the same run (Nginx answering a
fixed body itself), and cost as CPU microseconds per request per container: absolute requests/s
drift with a shared machine, ratios and CPU time per request much less.

Shapes (results.json, written by bench.py):
  results[path][scenario] = summarise(rounds): rps, p50_ms, p99_ms (median round), requests,
    errors (all rounds), rounds_rps, cpu_us (container -> CPU µs per request over all rounds,
    "machine" for every CPU of the machine, None where it cannot be read), and for the direct
    path fixed_rate: the open-loop run at a quarter of the saturated rate (offered_rps, rps,
    p50_ms, p99_ms, max_ms, errors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CEILING = "ceiling"
DIRECT = "direct"
PUBLISHED = "published"
PATHS = (DIRECT, PUBLISHED)
GENERATOR = "loadgen"  # the generator's container, in cpu_us
MACHINE = "machine"  # every CPU of the machine, in cpu_us

# Compose services and the short names the table gives them.
SHORT_NAMES = {
    "nginx": "Nginx",
    "go-service": "Go",
    "py-service": "gunicorn",
    "py-service-flask": "flask run",
    "py-service-redis": "gunicorn (Redis)",
    "redis": "Redis",
}


@dataclass(frozen=True)
class Scenario:
    """One route under load.

    name: the key in results.json. label, via: what the table says. direct: the URL on the stack's
    network. published: the path through Nginx's published port, None when a user's curl does not
    take this route. services: the Compose services on the request's way (the table's CPU columns).
    """

    name: str
    label: str
    via: str
    direct: str
    published: str | None
    services: tuple[str, ...]


SCENARIOS = (
    Scenario(
        CEILING,
        "Nginx fixed body (ceiling)",
        "Nginx `return 200`",
        "http://nginx:8080/bench/ceiling",
        "nginx:/bench/ceiling",
        ("nginx",),
    ),
    Scenario(
        "python_nginx_hit",
        "/python/time, Nginx cache HIT",
        "Nginx cache",
        "http://nginx:8080/python/time",
        "nginx:/python/time",
        ("nginx", "py-service"),
    ),
    Scenario(
        "go_via_nginx",
        "/go/time through Nginx",
        "Nginx → Go (in-process cache)",
        "http://nginx:8080/go/time",
        "nginx:/go/time",
        ("nginx", "go-service"),
    ),
    Scenario(
        "go_direct",
        "/time, Go service straight",
        "Go (no Nginx)",
        "http://go-service:8080/time",
        None,
        ("go-service",),
    ),
    Scenario(
        "python_gunicorn",
        "/python/time uncached, gunicorn",
        "Nginx (no cache) → gunicorn",
        "http://nginx:8080/bench/python-uncached/time",
        None,
        ("nginx", "py-service"),
    ),
    Scenario(
        "python_flask_run",
        "/python/time uncached, `flask run`",
        "Nginx (no cache) → flask run",
        "http://nginx:8080/bench/flask-run/time",
        None,
        ("nginx", "py-service-flask"),
    ),
    Scenario(
        "python_redis",
        "/time, Redis variant",
        "Nginx :8001 → gunicorn + Redis",
        "http://nginx:8001/time",
        "redis:/time",
        ("nginx", "py-service-redis", "redis"),
    ),
)


@dataclass(frozen=True)
class Goal:
    """results[DIRECT][scenario][measure] / results[DIRECT][baseline][measure] >= at_least
    (or <= at_most)."""

    name: str
    scenario: str
    baseline: str
    measure: str = "rps"
    at_least: float | None = None
    at_most: float | None = None

    def ratio(self, results: dict[str, dict[str, Any]]) -> float:
        direct = results[DIRECT]
        return direct[self.scenario][self.measure] / direct[self.baseline][self.measure]

    def met(self, results: dict[str, dict[str, Any]]) -> bool:
        ratio = self.ratio(results)
        if self.at_least is not None and ratio < self.at_least:
            return False
        return self.at_most is None or ratio <= self.at_most


GOALS = (
    Goal("/python/time Nginx HIT ≥ 0.7 x ceiling", "python_nginx_hit", CEILING, at_least=0.7),
    Goal("/go/time through Nginx ≥ 0.5 x ceiling", "go_via_nginx", CEILING, at_least=0.5),
    Goal("gunicorn ≥ 3 x flask run", "python_gunicorn", "python_flask_run", at_least=3.0),
    Goal(
        "gunicorn p99 ≤ flask run p99",
        "python_gunicorn",
        "python_flask_run",
        measure="p99_ms",
        at_most=1.0,
    ),
)


def scenario_paths() -> list[tuple[Scenario, str]]:
    """Every (scenario, path) the benchmark loads, direct first."""
    return [(s, DIRECT) for s in SCENARIOS] + [(s, PUBLISHED) for s in SCENARIOS if s.published]


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario on one path over its rounds.

    Each round: wrk's report (report.lua: rps, p50_ms, p99_ms, requests, failed, not_connected)
    plus cpu_ns (container -> CPU nanoseconds spent during the round, None if unreadable).
    Returns the median round's rps and latencies, errors summed over all rounds, and CPU µs per
    request over all rounds.
    """
    ordered = sorted(rounds, key=lambda r: r["rps"])
    median = ordered[len(ordered) // 2]
    requests = sum(r["requests"] for r in rounds)
    cpu_us: dict[str, float | None] = {}
    for name in sorted({name for r in rounds for name in r["cpu_ns"]}):
        spent = [r["cpu_ns"].get(name) for r in rounds]
        cpu_us[name] = (
            None if None in spent or not requests else round(sum(spent) / 1000 / requests, 2)
        )
    return {
        "rps": median["rps"],
        "p50_ms": median["p50_ms"],
        "p99_ms": median["p99_ms"],
        "requests": requests,
        "errors": sum(r["failed"] + r["not_connected"] for r in rounds),
        "rounds_rps": [round(r["rps"], 1) for r in rounds],
        "cpu_us": cpu_us,
    }


def fixed_rate_summary(report: dict[str, Any]) -> dict[str, Any]:
    """loadgen's open-loop report, reduced to what the table shows."""
    return {
        "offered_rps": report["offered_rps"],
        "rps": round(report["rps"], 1),
        "p50_ms": report["p50_ms"],
        "p99_ms": report["p99_ms"],
        "max_ms": report["max_ms"],
        "errors": report["failed"] + report["not_connected"],
    }


def generator_headroom(results: dict[str, dict[str, Any]]) -> float:
    """Nginx's CPU per ceiling request over the generator's (direct path): above 1, the load
    generator was not what limited the ceiling's throughput. KeyError if either is missing."""
    cpu = results[DIRECT][CEILING]["cpu_us"]
    return cpu["nginx"] / cpu[GENERATOR]


def _cpu_cell(result: dict[str, Any], names: Iterable[str]) -> str:
    cpu = result["cpu_us"]
    parts = [
        f"{SHORT_NAMES.get(n, n)} {cpu[n]:.0f}"
        for n in (GENERATOR, *names, MACHINE)
        if cpu.get(n) is not None
    ]
    return ", ".join(parts).replace(f"{GENERATOR} ", "generator ")


def markdown(results: dict[str, dict[str, Any]], command: str, setup: str) -> str:
    """The results as the Markdown docs/bench/results.md holds (tables of scenarios and goals)."""
    lines = [
        f"Command: `{command}`  ",
        f"Setup: {setup}",
        "",
        "CPU µs/request: each container's CPU time (its cgroup, from the Docker Engine API) "
        "over the requests answered; *machine* is every CPU of the machine (/proc/stat), "
        "Docker's own processes and the kernel's network work included.",
        "",
        "| Scenario | Route | Path | req/s | x ceiling | p50 ms | p99 ms "
        "| p99 ms at fixed rate | errors | CPU µs/request |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for path in PATHS:
        ceiling = results[path][CEILING]["rps"]
        for scenario in SCENARIOS:
            r = results[path].get(scenario.name)
            if r is None:
                continue
            fixed = r.get("fixed_rate")
            fixed_cell = f"{fixed['p99_ms']:.2f} ({fixed['offered_rps']:,.0f}/s)" if fixed else "-"
            errors = r["errors"] + (fixed["errors"] if fixed else 0)
            lines.append(
                f"| {scenario.label} | {scenario.via} | {path} | {r['rps']:,.0f} "
                f"| {r['rps'] / ceiling:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                f"| {fixed_cell} | {errors} | {_cpu_cell(r, scenario.services)} |"
            )
    lines += ["", "| Goal (direct path) | Measured | Met |", "|---|---:|---|"]
    for goal in GOALS:
        lines.append(
            f"| {goal.name} | {goal.ratio(results):.2f} | {'yes' if goal.met(results) else 'no'} |"
        )
    lines += [
        "",
        f"Generator headroom at the ceiling: Nginx spent {generator_headroom(results):.1f} x the "
        "generator's CPU per request.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    """Writes a PNG: per scenario and path, req/s as a fraction of that path's ceiling."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = [(s, p) for s, p in scenario_paths()]
    labels = [f"{s.label.replace('`', '')}  [{p}]" for s, p in rows]
    ratios = [results[p][s.name]["rps"] / results[p][CEILING]["rps"] for s, p in rows]
    colours = ["#4878a8" if p == DIRECT else "#a8a8a8" for _, p in rows]
    figure, axes = plt.subplots(figsize=(13, 0.55 * len(rows) + 1.6), dpi=110)
    bars = axes.barh(labels[::-1], ratios[::-1], color=colours[::-1])
    for bar, (scenario, p) in zip(bars, rows[::-1], strict=True):
        r = results[p][scenario.name]
        axes.text(
            bar.get_width() + 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{r['rps']:,.0f} req/s · p99 {r['p99_ms']:.1f} ms · "
            + _cpu_cell(r, scenario.services)
            + " µs/req",
            va="center",
            fontsize=9,
            # Readable over the goal lines.
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    for goal in GOALS:
        if goal.baseline == CEILING and goal.at_least is not None:
            axes.axvline(goal.at_least, color="#b04040", linestyle=":", linewidth=1)
    axes.set_xlim(0, max(1.0, *ratios) * 2.45)
    axes.tick_params(axis="y", labelsize=10)
    axes.set_xlabel(
        "requests/s as a fraction of the ceiling on the same path, same run", fontsize=10
    )
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
