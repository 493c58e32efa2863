"""What the stack tests share: a stack of their own, its life cycle, the load generator, Prometheus
queries and container facts from the engine. Bounded waits and HTTP requests come from
tools/testing/python/support.py.

Every run gets a stack of its own, so that two copies of a test (--runs_per_test, two clones, two
CI jobs on one machine) never meet: a Compose project named for the run, a /24 subnet the engine
accepted (it refuses one that overlaps another network: the next is tried), and loopback ports
the engine bound (one another run took meanwhile is refused: new ones are tried). Everything the
run made goes when it ends, also when it fails or is stopped (SIGTERM, as Bazel stops a test that
timed out); a run killed outright is cleaned up by the next run (remove_abandoned_runs).
docs/operations.md, "The stack tests", says more.

Inputs, from stack_test (deploy/stack.bzl), in the environment: LOADGEN (the load generator) and
STACK_LOADERS (the images' oci_load programs, space-separated). A stack's settings default to
deploy/stack.env's (deploy/stack_settings.py), as `up`'s do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import random
import secrets
import socket
import string
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy import stack_settings
from py_service.app.duration import parse_duration
from tools.testing.python.ownership import (
    OWNER_LABEL,
    owner_alive,
    owner_id,
    sigterm_raises_keyboard_interrupt,
)
from tools.testing.python.support import free_port, http_request

RUNFILES = Path.cwd()
WORKSPACE = Path(os.path.realpath("deploy/compose.yaml")).parent.parent
STACK_SH = RUNFILES / "deploy/stack.sh"
LOADGEN = os.environ.get("LOADGEN", "")
LOADERS = os.environ.get("STACK_LOADERS", "").split()
DEFAULTS = stack_settings.read()

# The /24s test stacks take theirs from: the upper half of 10.213.0.0/16, clear of the user's
# stack (compose.yaml's 10.213.47.0/24) and of the benchmark's networks (10.213.99.0/24).
SUBNETS = tuple(ipaddress.ip_network("10.213.128.0/17").subnets(new_prefix=24))
# Compose's own labels: a network that carries them is, to Compose, the project's default network,
# which it then uses as it is and removes with the project (`down`).
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_NETWORK_LABEL = "com.docker.compose.network"
# On everything a run makes besides Compose's containers and volumes: the run's project, and
# (OWNER_LABEL) the process that made it, which tells an abandoned run from a live one.
RUN_LABEL = "org.cache-platform.test-run"
# What the engine says when a host port it is to publish on is taken.
PORT_TAKEN = ("port is already allocated", "address already in use")
UP_ATTEMPTS = 3


def seconds(duration: str) -> float:
    """A duration in Go's syntax (the services' CACHE_TTL, "10s"), in seconds."""
    return parse_duration(duration) / 1e9


def loopback(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class StackSettings:
    """What a test module asks of its stack: compose.yaml's STACK_* settings."""

    # In the project's name, for people reading `docker ps`: e2e, fault, scale.
    name: str
    profiles: str = ""
    # The Python app's TTL in whole seconds (its max-age; STACK_PY_CACHE_TTL).
    py_cache_ttl: int = int(seconds(DEFAULTS["STACK_PY_CACHE_TTL"]))
    # The Go tier: how many replicas `up` starts (STACK_GO_REPLICAS) and their cache TTL
    # (STACK_GO_CACHE_TTL).
    go_replicas: int = int(DEFAULTS["STACK_GO_REPLICAS"])
    go_cache_ttl: str = DEFAULTS["STACK_GO_CACHE_TTL"]
    # How long a replica waits for Redis before it answers without it (STACK_GO_REDIS_TIMEOUT).
    go_redis_timeout: str = DEFAULTS["STACK_GO_REDIS_TIMEOUT"]
    # Alertmanager delivers to http://<this host of the subnet>:9000/, a receiver the test runs
    # (Stack.start_container); None keeps compose.yaml's default.
    alert_webhook_host: int | None = None


@dataclass(frozen=True)
class Ports:
    """The loopback ports a stack publishes on."""

    nginx: int
    prometheus: int
    redis_variant: int
    grafana: int
    alertmanager: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(len(dataclasses.fields(cls))))


@dataclass(frozen=True)
class Stack:
    """One run's stack: `running` makes it."""

    settings: StackSettings
    project: str
    subnet: ipaddress.IPv4Network
    ports: Ports
    # Passwords of Redis' ACL users (deploy/redis/users_acl.sh) the tests' own commands use.
    redis_go_service_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    redis_py_service_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    redis_monitor_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    # Host numbers in the subnet, fixed in compose.yaml (STACK_PY_SERVICE_IP), below the upper
    # half the engine hands out (STACK_IP_RANGE).
    PY_SERVICE = 11
    PY_REDIS_SERVICE = 12
    PY_FLASK_SERVICE = 13

    def address(self, host: int) -> str:
        return str(self.subnet.network_address + host)

    @property
    def network(self) -> str:
        """The project's network, as Compose names it."""
        return f"{self.project}_default"

    @property
    def nginx(self) -> str:
        return loopback(self.ports.nginx)

    @property
    def prometheus(self) -> str:
        return loopback(self.ports.prometheus)

    @property
    def redis_variant(self) -> str:
        return loopback(self.ports.redis_variant)

    @property
    def alert_webhook_url(self) -> str:
        host = self.settings.alert_webhook_host
        return f"http://{self.address(host)}:9000/" if host is not None else ""

    @property
    def go_direct(self) -> str:
        """The first running Go replica, on the stack's network."""
        return self.go_replicas_direct()[0]

    def go_replicas_direct(self) -> list[str]:
        """Every running Go replica's URL on the stack's network (their addresses are Docker's
        to choose), in container-name order."""
        urls = []
        for container in self.containers("go-service"):
            (settings,) = container["NetworkSettings"]["Networks"].values()
            urls.append(f"http://{settings['IPAddress']}:8080")
        assert urls, "no Go replica is running"
        return urls

    @property
    def py_direct(self) -> str:
        return f"http://{self.address(self.PY_SERVICE)}:8000"

    @property
    def secrets_dir(self) -> Path:
        """Where deploy/stack.sh writes the containers' secrets for this project."""
        return Path.home() / ".local/state/cache-platform" / self.project / "secrets"

    def env(self) -> dict[str, str]:
        settings = self.settings
        ip_range = list(self.subnet.subnets(prefixlen_diff=1))[1]
        return project_env(
            self.project,
            COMPOSE_PROFILES=settings.profiles,
            STACK_NGINX_PORT=str(self.ports.nginx),
            STACK_PROMETHEUS_PORT=str(self.ports.prometheus),
            STACK_REDIS_VARIANT_PORT=str(self.ports.redis_variant),
            STACK_GRAFANA_PORT=str(self.ports.grafana),
            STACK_ALERTMANAGER_PORT=str(self.ports.alertmanager),
            STACK_SUBNET=str(self.subnet),
            STACK_IP_RANGE=str(ip_range),
            STACK_GO_REPLICAS=str(settings.go_replicas),
            STACK_GO_CACHE_TTL=settings.go_cache_ttl,
            STACK_GO_REDIS_TIMEOUT=settings.go_redis_timeout,
            STACK_PY_SERVICE_IP=self.address(self.PY_SERVICE),
            STACK_PY_REDIS_SERVICE_IP=self.address(self.PY_REDIS_SERVICE),
            STACK_PY_FLASK_SERVICE_IP=self.address(self.PY_FLASK_SERVICE),
            STACK_PY_CACHE_TTL=f"{settings.py_cache_ttl}s",
            # The tests' load comes from this machine, which Nginx sees as the network's gateway
            # (published ports, container addresses), thousands of requests a second: not
            # limited, as a client on the internet would be (nginx_test checks the limits).
            STACK_NGINX_UNLIMITED_CLIENTS=f"{self.address(0)}/24",
            **(
                {"STACK_ALERT_WEBHOOK_URL": self.alert_webhook_url}
                if self.alert_webhook_url
                else {}
            ),
            # Where `up` put them: a Go replica the tests scale out mounts its own.
            STACK_SECRETS_DIR=str(self.secrets_dir),
            # Given, not generated into ~/.config (the tests talk to Redis as its users).
            STACK_REDIS_GO_SERVICE_PASSWORD=self.redis_go_service_password,
            STACK_REDIS_PY_SERVICE_PASSWORD=self.redis_py_service_password,
            STACK_REDIS_MONITOR_PASSWORD=self.redis_monitor_password,
        )

    def compose(self, *args: str) -> str:
        return compose(self.project, *args, env=self.env())

    def nginx_direct(self) -> str:
        """Nginx's own address on the stack's network (no published port, no userland proxy)."""
        (settings,) = self.container("nginx")["NetworkSettings"]["Networks"].values()
        return f"http://{settings['IPAddress']}:8080"

    def container(self, service: str) -> dict:
        """`docker inspect` of a service's container."""
        container_id = self.compose("ps", "--all", "--quiet", service).strip()
        assert container_id, f"no container for {service}"
        return json.loads(docker("inspect", container_id).stdout)[0]

    def containers(self, service: str = "") -> list[dict]:
        """`docker inspect` of a service's running containers (one per replica), by name; every
        service's without one."""
        ids = self.compose("ps", "--quiet", *([service] if service else [])).split()
        if not ids:
            return []
        return sorted(json.loads(docker("inspect", *ids).stdout), key=lambda c: c["Name"])

    def states(self) -> list[tuple[str, str, str]]:
        """(service, state, health) of each of the stack's containers, stopped ones too, from one
        `compose ps`: e.g. ("nginx", "running", "healthy"), ("redis", "exited", "")."""
        lines = self.compose("ps", "--all", "--format", "json").splitlines()
        return [(c["Service"], c["State"], c["Health"]) for c in map(json.loads, lines)]

    def start_container(self, name: str, *run_args: str) -> str:
        """`docker run --detach` of a container of the test's own on the stack's network, named
        <project>-<name>: removed before the stack goes down. Returns its name."""
        full_name = f"{self.project}-{name}"
        docker(
            "run",
            "--detach",
            "--name",
            full_name,
            "--label",
            f"{RUN_LABEL}={self.project}",
            "--label",
            f"{OWNER_LABEL}={owner_id()}",
            "--network",
            self.network,
            *run_args,
        )
        return full_name

    def prometheus_query(self, expr: str) -> list[dict]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        payload = json.loads(http_request(url).body)
        assert payload["status"] == "success", payload
        return payload["data"]["result"]


def project_env(project: str, **settings: str) -> dict[str, str]:
    """The environment of deploy/stack.sh and Compose for a project."""
    return {
        **os.environ,
        # Every setting, deploy/stack.env's unless the environment sets it, so that the tests' own
        # compose commands interpolate compose.yaml as stack.sh's do (it holds no default).
        **stack_settings.effective(os.environ),
        "COMPOSE_PROJECT_NAME": project,
        # compose.yaml refuses to load without these; stack.sh sets its own for `up`, and the
        # tests' own compose commands (ps, stop, start) create no container.
        "STACK_ALERT_WEBHOOK_URL_FILE": os.devnull,
        "STACK_NGINX_UNLIMITED_CLIENTS_FILE": os.devnull,
        # compose.yaml refuses to start Grafana without one.
        "STACK_GRAFANA_ADMIN_PASSWORD": os.environ.get(
            "STACK_GRAFANA_ADMIN_PASSWORD", secrets.token_urlsafe(18)
        ),
        **settings,
    }


def compose(project: str, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["docker", "compose", "-f", str(WORKSPACE / "deploy/compose.yaml"), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode:
        raise AssertionError(f"docker compose {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nothing listens on, below the kernel's ephemeral range:
    there no outgoing connection (another run's load generator) takes one before the engine
    binds it. Another run may still pick one meanwhile; the engine then refuses it (PORT_TAKEN)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low < 20_000:  # a machine with a wide ephemeral range: take the kernel's choice
        return [free_port() for _ in range(count)]
    rng = random.SystemRandom()
    ports: list[int] = []
    for _ in range(1000):
        if len(ports) == count:
            break
        port = rng.randrange(10_000, low)
        if port in ports:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    assert len(ports) == count, f"found {len(ports)} of {count} free ports below {low}"
    return ports


def claim_subnet(
    project: str,
    candidates: Sequence[ipaddress.IPv4Network] = SUBNETS,
    owner: str | None = None,
) -> ipaddress.IPv4Network:
    """Creates the project's network on the first of `candidates`, from a random one on, that the
    engine accepts: it refuses a subnet that overlaps one of its networks (another run's, or one
    this list does not know of). Compose takes the network for the project's own (its labels) and
    `down` removes it, which gives the subnet back. owner: the run's process (owner_id), this
    one by default."""
    start = random.SystemRandom().randrange(len(candidates))
    for subnet in (*candidates[start:], *candidates[:start]):
        result = docker(
            "network",
            "create",
            "--subnet",
            str(subnet),
            "--ip-range",
            str(list(subnet.subnets(prefixlen_diff=1))[1]),
            "--label",
            f"{COMPOSE_PROJECT_LABEL}={project}",
            "--label",
            f"{COMPOSE_NETWORK_LABEL}=default",
            "--label",
            f"{RUN_LABEL}={project}",
            "--label",
            f"{OWNER_LABEL}={owner or owner_id()}",
            f"{project}_default",
            check=False,
        )
        if not result.returncode:
            return subnet
        if "overlap" not in result.stderr:  # "Pool overlaps ...", "... overlapping IPv4"
            raise AssertionError(f"docker network create {subnet}: {result.stderr.strip()}")
    raise AssertionError(f"every candidate subnet is taken: {candidates[0]} ... {candidates[-1]}")


def tear_down(project: str, env: dict[str, str] | None = None) -> list[str]:
    """Removes everything of a run: its own containers, the Compose project with its volumes (and
    stack.sh's files for it), its network. Carries on past failures and returns them: a teardown
    that stops half-way leaves the rest behind."""
    problems = []
    ours = docker("ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}={project}").stdout
    if ours.split():
        problems.append(docker("rm", "--force", "--volumes", *ours.split(), check=False).stderr)
    # A short grace: how each app stops is fault_test's to check, not the teardown's.
    down = subprocess.run(
        [str(STACK_SH), "down", "--volumes", "--timeout", "2"],
        env=env or project_env(project),
        capture_output=True,
        text=True,
    )
    if down.returncode:
        problems.append(down.stderr)
    network = docker("network", "rm", f"{project}_default", check=False)
    if network.returncode and "not found" not in network.stderr:
        problems.append(network.stderr)
    return [problem.strip() for problem in problems if problem.strip()]


def remove_abandoned_runs() -> None:
    """Tears down the stacks of runs whose process is gone (killed outright: SIGKILL gives no
    teardown), whichever clone they came from. A live run's stack is never touched."""
    listed = docker("network", "ls", "--quiet", "--filter", f"label={OWNER_LABEL}").stdout
    for network in listed.split():
        inspected = docker("network", "inspect", network, check=False)
        if inspected.returncode:  # removed meanwhile, by its run or another cleaner
            continue
        labels = json.loads(inspected.stdout)[0]["Labels"]
        if not owner_alive(labels[OWNER_LABEL]):
            project = labels[RUN_LABEL]
            print(f"removing the abandoned stack {project}", file=sys.stderr)
            tear_down(project)


def up(stack: Stack, loaders: Sequence[str], script: Path = STACK_SH) -> Stack:
    """deploy/stack.sh up, as `bazel run //deploy:up` runs it; again on new ports while the engine
    refuses one as taken (another run picked it meanwhile). Returns the stack as it runs."""
    for _ in range(UP_ATTEMPTS):
        result = subprocess.run(
            [str(script), "up", *loaders], env=stack.env(), capture_output=True, text=True
        )
        print(result.stdout + result.stderr, file=sys.stderr)
        if not result.returncode:
            return stack
        if not any(taken in result.stderr for taken in PORT_TAKEN):
            raise AssertionError(f"deploy/stack.sh up exited {result.returncode}")
        stack = dataclasses.replace(stack, ports=Ports.pick())
    raise AssertionError(f"the engine refused the ports {UP_ATTEMPTS} times")


@contextlib.contextmanager
def running(settings: StackSettings, loaders: Sequence[str] = LOADERS) -> Iterator[Stack]:
    """A stack of this run's own up for the block, then torn down: also when the block fails,
    when `up` fails half-way, and on SIGTERM. Clears abandoned runs' stacks first."""
    with sigterm_raises_keyboard_interrupt():
        remove_abandoned_runs()
        project = f"cache-platform-{settings.name}-{secrets.token_hex(4)}"
        stack: Stack | None = None
        try:
            subnet = claim_subnet(project)
            stack = Stack(settings, project, subnet, Ports.pick())
            stack = up(stack, loaders)
            yield stack
        finally:
            problems = tear_down(project, stack.env() if stack else None)
            assert not problems, f"tearing down {project}: {problems}"


def loadgen(*urls: str, connections: int, seconds: float, **flags: str | int) -> dict[str, Any]:
    """Runs //tools/testing/cmd/loadgen (bounded by `seconds`) and returns its JSON report.
    flags: more loadgen flags, e.g. max_requests=1000 for -max-requests=1000."""
    extra = [f"-{name.replace('_', '-')}={value}" for name, value in flags.items()]
    fixed = [f"-connections={connections}", f"-duration={seconds}s", "-timeout=10s"]
    result = subprocess.run(
        [LOADGEN, *fixed, *extra, *urls],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return json.loads(result.stdout)


def metric_samples(url: str) -> dict[str, float]:
    """A Prometheus text exposition as {series: value}: one entry per series."""
    response = http_request(url)
    assert response.status == 200, f"{url}: {response.status} {response.text[:200]}"
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


# docker stats' units.
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def memory_usage(stack: Stack) -> dict[str, int]:
    """Each of the stack's running containers' memory use in bytes (its tmpfs mounts included), by
    container name (`docker stats`)."""
    ids = [container["Id"] for container in stack.containers()]
    out = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *ids).stdout
    usage = {}
    for line in out.splitlines():
        name, used = line.split()[:2]  # "cache-platform-fault-1a2b3c4d-nginx-1 12.5MiB / 192MiB"
        number = used.rstrip(string.ascii_letters)
        usage[name] = int(float(number) * UNITS[used[len(number) :]])
    return usage
