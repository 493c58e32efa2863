"""`tools/bazel run //tools/dev/bench`: the benchmark of the stack's caching setups (docs/bench/).

Starts the stack as `//deploy:up` does, with the `redis` and `bench` profiles (the Redis variant and
the app under `flask run`) and the benchmark's own Nginx image (//tools/dev/bench:nginx_image: the
stack's, plus the /bench/ routes and no per-client limits: its generators send tens of thousands
of requests a second from one address), and two load-generator containers
(//tools/dev/bench:loadgen_image): one on the stack's network, which sends to the containers' own
addresses (the *direct* path: the stack itself), and one on the engine's host network, which sends
to Nginx's published port as a user's `curl` does (the *published* path: Docker's port publishing
included).

Each round loads every scenario in turn with wrk (saturation: closed loop, --connections), the
order rotated from round to round so that drift of a shared machine hits them all alike; every
container's CPU time is read from the Docker Engine API before and after. Then each scenario runs
once more at a fixed offered rate with loadgen -rate (open loop), whose latencies include the
queueing a closed loop hides: a quarter of its median saturated rate, at most FIXED_RATE_CAP.
Writes docs/bench/results.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from deploy import stack_settings
from tools.dev.bench import report
from tools.testing.python.support import wait_until

COMMAND = "tools/bazel run //tools/dev/bench"
DEFAULTS = {"seconds": 8.0, "rounds": 3, "connections": 50}
REPORT_LUA = "/usr/local/share/bench/report.lua"
GENERATOR_IMAGE = "cache-platform/loadgen:dev"
NGINX_IMAGE = "cache-platform/nginx-bench:dev"  # :nginx_load's tag
# loadgen's open loop (vegeta's attacker on net/http) spends 70-90 µs of CPU per request, about
# six times wrk's: above this rate it would compete with the stack for the machine's CPUs.
FIXED_RATE_CAP = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--generator-loader", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--nginx-loader", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--loaders", nargs="+", required=True, help=argparse.SUPPRESS)
    parser.add_argument(
        "--seconds", type=float, default=DEFAULTS["seconds"], help="per scenario and round (1..60)"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULTS["rounds"], help="rounds over all scenarios (1..10)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULTS["connections"],
        help="concurrent connections at saturation (1..500)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SCENARIO",
        choices=[s.name for s in report.SCENARIOS],
        help="load only these scenarios (and the ceiling); writes nothing",
    )
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


def start_stack(args: argparse.Namespace) -> None:
    profiles = {p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p}
    env = dict(
        os.environ,
        COMPOSE_PROFILES=",".join(sorted(profiles | {"redis", "bench"})),
        STACK_NGINX_IMAGE=NGINX_IMAGE,
        STACK_NGINX_UNLIMITED_CLIENTS="0.0.0.0/0 ::/0",
    )
    subprocess.run([args.stack, "up", *args.loaders, args.nginx_loader], check=True, env=env)
    subprocess.run([args.generator_loader], check=True)


def published_url(published: str) -> str:
    """ "nginx:/path" -> Nginx's published port on loopback (the stack's settings in force)."""
    origin, path = published.split(":", 1)
    settings = stack_settings.effective(os.environ)
    port = {
        "nginx": settings["STACK_NGINX_PORT"],
        "redis": settings["STACK_REDIS_VARIANT_PORT"],
    }[origin]
    return f"http://127.0.0.1:{port}{path}"


class Stack:
    """The project's containers and the two generators, with their CPU time."""

    def __init__(self, client: docker.DockerClient, project: str) -> None:
        self.client = client
        self.project = project
        found = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        # A service may run several replicas (STACK_GO_REPLICAS): its CPU time is theirs together.
        self.services: dict[str, list[Container]] = {}
        for container in found:
            service = container.labels["com.docker.compose.service"]
            self.services.setdefault(service, []).append(container)
        missing = {n for s in report.SCENARIOS for n in s.services} - set(self.services)
        if missing:
            sys.exit(f"bench: no running container for {sorted(missing)} in project {project}")
        self.generators: dict[str, Container] = {}

    def start_generators(self) -> None:
        # Hardened like the stack's services (compose.yaml); no CPU limit: the generator must
        # never be the bottleneck, and its CPU time is reported beside Nginx's.
        hardening: dict[str, Any] = {
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "mem_limit": "256m",
            "detach": True,
            "auto_remove": True,
            "labels": {"cache-platform.bench": self.project},
        }
        for path, network in (
            (report.DIRECT, {"network": f"{self.project}_default"}),
            (report.PUBLISHED, {"network_mode": "host"}),
        ):
            name = f"{self.project}-bench-{path}"
            self._remove(name)
            self.generators[path] = self.client.containers.run(
                GENERATOR_IMAGE, name=name, **network, **hardening
            )

    def stop_generators(self) -> None:
        for container in self.generators.values():
            self._remove(container.name)

    def _remove(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.containers.get(name).remove(force=True)

    def cpu_ns(self) -> dict[str, int | None]:
        """CPU nanoseconds each container (and the machine) has spent so far."""
        containers = dict(
            self.services,
            **{
                report.GENERATOR: [self.generators[report.DIRECT]],
                f"{report.GENERATOR}-{report.PUBLISHED}": [self.generators[report.PUBLISHED]],
            },
        )
        usage: dict[str, int | None] = {}
        for name, replicas in containers.items():
            spent = [self._container_cpu_ns(c) for c in replicas]
            usage[name] = None if None in spent else sum(s for s in spent if s is not None)
        usage[report.MACHINE] = machine_cpu_ns()
        return usage

    def _container_cpu_ns(self, container: Container) -> int | None:
        # one_shot: the current counters without waiting for a second sample.
        stats = self.client.api.stats(container.id, stream=False, one_shot=True)
        return stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")

    def run(self, path: str, command: list[str]) -> dict[str, Any]:
        """Runs a generator command in the path's container and returns its JSON report."""
        result = self.generators[path].exec_run(command, demux=True)
        stdout, stderr = (part.decode() if part else "" for part in result.output)
        if result.exit_code != 0 or not stdout.strip():
            raise RuntimeError(f"{' '.join(command)}: exit {result.exit_code}: {stderr.strip()}")
        try:
            return json.loads(stdout)  # loadgen: the whole output
        except json.JSONDecodeError:
            return json.loads(stdout.strip().splitlines()[-1])  # wrk: report.lua's last line


def machine_cpu_ns() -> int | None:
    """Busy CPU time of the whole machine (every state but idle and iowait), or None without
    /proc/stat (a machine that runs the engine in a VM: the VM's CPU is not visible here)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def wrk(connections: int, seconds: float, url: str) -> list[str]:
    threads = min(2, connections)
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        REPORT_LUA,
        url,
    ]


def wait_until_served(stack: Stack, path: str, url: str, timeout_s: float = 60) -> None:
    """Returns once a 1 s wrk run from the path's generator gets answers and no error; exits
    naming the last problem after timeout_s seconds."""

    def served() -> bool:
        run = stack.run(path, wrk(2, 1, url))  # RuntimeError: wrk itself failed
        if not run["requests"] or run["failed"] or run["not_connected"]:
            raise RuntimeError(f"{run['failed']} failed, {run['not_connected']} not connected")
        return True

    try:
        wait_until(served, timeout_s, interval_s=1, what=f"{url} served", retry_on=(RuntimeError,))
    except TimeoutError as error:
        sys.exit(f"bench: {url} is not served without errors ({error}); is the stack up?")


def measure(stack: Stack, path: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    stack.run(path, wrk(args.connections, 1, url))  # warm-up: connections, caches
    before = stack.cpu_ns()
    run = stack.run(path, wrk(args.connections, args.seconds, url))
    after = stack.cpu_ns()
    generator = report.GENERATOR if path == report.DIRECT else f"{report.GENERATOR}-{path}"
    spent: dict[str, int | None] = {}
    for name, end in after.items():
        start = before.get(name)
        spent[name] = None if end is None or start is None else end - start
    # The table's generator is the one that sent this round's load.
    spent[report.GENERATOR] = spent.pop(generator)
    spent.pop(f"{report.GENERATOR}-{report.PUBLISHED}", None)
    return dict(run, cpu_ns=spent)


def main() -> None:
    args = parse_args()
    start_stack(args)
    project = os.environ.get("COMPOSE_PROJECT_NAME", "cache-platform")
    stack = Stack(docker.from_env(), project)
    stack.start_generators()
    try:
        measured = benchmark(stack, args)
    finally:
        stack.stop_generators()
    if args.only:
        return
    write(measured, args)


def benchmark(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    targets = [
        (s, p, s.direct if p == report.DIRECT else published_url(s.published or ""))
        for s, p in report.scenario_paths()
        if not args.only or s.name in args.only or s.name == report.CEILING
    ]
    for _, path, url in targets:
        wait_until_served(stack, path, url)

    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {(s.name, p): [] for s, p, _ in targets}
    for number in range(args.rounds):
        # Rotate the order each round: no scenario always runs first or last.
        shift = number % len(targets)
        for scenario, path, url in targets[shift:] + targets[:shift]:
            run = measure(stack, path, url, args)
            rounds[(scenario.name, path)].append(run)
            cpu = {
                k: v
                for k, v in run["cpu_ns"].items()
                if k in (report.GENERATOR, *scenario.services)
            }
            per_request = ", ".join(
                f"{k} {v / 1000 / max(run['requests'], 1):.1f}"
                for k, v in cpu.items()
                if v is not None
            )
            print(
                f"round {number + 1}/{args.rounds} {scenario.name:17} {path:9} "
                f"{run['rps']:9,.0f} req/s p50 {run['p50_ms']:6.2f} ms p99 {run['p99_ms']:7.2f} ms "
                f"errors {run['failed'] + run['not_connected']}  CPU µs/req: {per_request}",
                flush=True,
            )

    results: dict[str, dict[str, Any]] = {p: {} for p in report.PATHS}
    for (name, path), runs in rounds.items():
        results[path][name] = report.summarise(runs)

    # Latency at a fixed offered rate, well below what each scenario sustained at saturation.
    for scenario, path, url in targets:
        if path != report.DIRECT:
            continue
        rate = max(1, min(FIXED_RATE_CAP, round(results[path][scenario.name]["rps"] / 4)))
        fixed = stack.run(
            path,
            [
                "loadgen",
                f"-rate={rate}",
                "-connections=10",
                f"-duration={args.seconds:g}s",
                "-timeout=10s",
                url,
            ],
        )
        summary = report.fixed_rate_summary(fixed)
        results[path][scenario.name]["fixed_rate"] = summary
        print(
            f"fixed rate {scenario.name:17} offered {rate:,}/s sent {summary['rps']:,.0f}/s "
            f"p50 {summary['p50_ms']:.2f} ms p99 {summary['p99_ms']:.2f} ms "
            f"max {summary['max_ms']:.1f} ms errors {summary['errors']}",
            flush=True,
        )
    return {"results": results, "rounds": {f"{n}/{p}": r for (n, p), r in rounds.items()}}


def write(measured: dict[str, Any], args: argparse.Namespace) -> None:
    results = measured["results"]
    setup = (
        f"{os.cpu_count()} CPUs ({platform.machine()}), wrk with {args.connections} connections, "
        f"{args.rounds} rounds x {args.seconds:g} s per scenario and path, median round; "
        "generators, Nginx and the apps share the machine (container CPU limits: "
        "deploy/compose.yaml; the generators have none)."
    )
    command = COMMAND
    chosen = (args.seconds, args.rounds, args.connections)
    if chosen != (DEFAULTS["seconds"], DEFAULTS["rounds"], DEFAULTS["connections"]):
        command += (
            f" -- --seconds {args.seconds:g} --rounds {args.rounds}"
            f" --connections {args.connections}"
        )
    table = report.markdown(results, command, setup)
    print("\n" + table)

    output = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")) / args.output
    output.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "setup": setup, **measured}
    (output / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    (output / "results.md").write_text(table)
    report.plot(results, f"{command}  ({setup.split(',')[0]})", output / "results.png")
    print(f"bench: wrote {output}/results.{{json,md,png}}")


if __name__ == "__main__":
    main()
