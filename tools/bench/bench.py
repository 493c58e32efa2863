"""`tools/bazel run //tools/bench`: the benchmark of the stack's caching setups (docs/bench/).

Starts the stack as `//deploy:up` does, with the `redis` and `bench` profiles (the Redis variant and
the app under `flask run`), then loads each scenario in turn with tools/bench/cmd/loadgen, on
loopback, bounded in time and connections. Rounds interleave the scenarios so that drift of a
shared machine hits them all alike; each scenario's median round is reported as a ratio to the
ceiling of the same run. Writes docs/bench/results.{json,md,png} into the workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools.bench import report

RUNFILES = Path.cwd()
COMMAND = "tools/bazel run //tools/bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loadgen", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--stack", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--loaders", nargs="+", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10, help="per scenario and round (1..60)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all scenarios (1..10)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent (1..500)")
    parser.add_argument(
        "--output",
        default="docs/bench",
        help="directory for results.{json,md,png}, in the workspace",
    )
    args = parser.parse_args()
    for name, low, high in (("seconds", 1, 60), ("rounds", 1, 10), ("connections", 1, 500)):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be within {low}..{high}")
    return args


def origins() -> dict[str, str]:
    # The same variables, and defaults, as deploy/compose.yaml's published ports.
    nginx_port = os.environ.get("NGINX_PORT", "80")
    redis_port = os.environ.get("REDIS_VARIANT_PORT", "8001")
    return {"nginx": f"http://127.0.0.1:{nginx_port}", "redis": f"http://127.0.0.1:{redis_port}"}


def start_stack(args: argparse.Namespace) -> None:
    profiles = {p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p}
    env = dict(os.environ, COMPOSE_PROFILES=",".join(sorted(profiles | {"redis", "bench"})))
    subprocess.run([args.stack, "up", *args.loaders], check=True, env=env)


def wait_until_served(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError) as error:
            if time.monotonic() > deadline:
                sys.exit(f"bench: {url} does not answer 200 ({error}); is the stack up?")
        time.sleep(0.5)


def load(loadgen: str, url: str, seconds: float, connections: int) -> dict[str, Any]:
    result = subprocess.run(
        [loadgen, f"-connections={connections}", f"-duration={seconds}s", "-timeout=10s", url],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def main() -> None:
    args = parse_args()
    start_stack(args)
    urls = {s.name: origins()[s.origin] + s.path for s in report.SCENARIOS}
    for url in urls.values():
        wait_until_served(url)

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for number in range(args.rounds):
        # Rotate the order each round: no scenario always runs first or last.
        names = list(urls)[number % len(urls) :] + list(urls)[: number % len(urls)]
        for name in names:
            load(args.loadgen, urls[name], 1, args.connections)  # warm-up: connections, caches
            run = load(args.loadgen, urls[name], args.seconds, args.connections)
            rounds[name].append(run)
            print(
                f"round {number + 1}/{args.rounds} {name:18} {run['rps']:9,.0f} req/s "
                f"p50 {run['p50_ms']:6.2f} ms p99 {run['p99_ms']:7.2f} ms "
                f"failed {run['failed']} not connected {run['not_connected']}",
                flush=True,
            )

    results = {name: report.summarise(runs) for name, runs in rounds.items()}
    cpus = os.cpu_count()
    setup = (
        f"{cpus} CPUs ({platform.machine()}), {args.connections} connections, "
        f"{args.rounds} rounds x {args.seconds:g} s per scenario, median round; load generator, "
        "Nginx and the apps share the machine (container CPU limits: deploy/compose.yaml)."
    )
    command = COMMAND
    if (args.seconds, args.rounds, args.connections) != (10, 3, 50):
        command += (
            f" -- --seconds {args.seconds:g} --rounds {args.rounds}"
            f" --connections {args.connections}"
        )
    table = report.markdown(results, command, setup)
    print("\n" + table)

    output = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")) / args.output
    output.mkdir(parents=True, exist_ok=True)
    measured = {"command": command, "setup": setup, "results": results, "rounds": rounds}
    (output / "results.json").write_text(json.dumps(measured, indent=2) + "\n")
    (output / "results.md").write_text(table)
    report.plot(results, f"{command}  ({setup.split(',')[0]})", output / "results.png")
    print(f"bench: wrote {output}/results.{{json,md,png}}")


if __name__ == "__main__":
    main()
