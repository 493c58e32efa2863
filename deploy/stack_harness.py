"""What the stack tests share: a stack of their own (a Compose project with its own ports and
subnet, so tests run side by side and never touch the user's stack), its life cycle, the load
generator, Prometheus queries and container facts from the engine. Bounded waits, free ports and
HTTP requests come from tools/testing/python/support.py.

Inputs, from stack_test (deploy/stack.bzl), in the environment: LOADGEN (the load generator) and
STACK_LOADERS (the images' oci_load programs, space-separated).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import string
import subprocess
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tools.testing.python.support import http_request

RUNFILES = Path.cwd()
WORKSPACE = Path(os.path.realpath("deploy/compose.yaml")).parent.parent
LOADGEN = os.environ["LOADGEN"]
LOADERS = os.environ["STACK_LOADERS"].split()


def loopback(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Stack:
    """One test's stack: `net` is the third octet of its 10.213.<net>.0/24 subnet."""

    project: str
    nginx_port: int
    prometheus_port: int
    redis_variant_port: int
    grafana_port: int
    alertmanager_port: int
    net: int
    profiles: str = ""
    py_cache_ttl: int = 60
    # The Go tier: how many replicas `up` starts (STACK_GO_REPLICAS) and their cache TTL
    # (STACK_GO_CACHE_TTL).
    go_replicas: int = 1
    go_cache_ttl: str = "10s"
    # How long a replica waits for Redis before it answers without it (STACK_GO_REDIS_TIMEOUT).
    go_redis_timeout: str = "50ms"
    # Where Alertmanager delivers; "" keeps compose.yaml's default.
    alert_webhook_url: str = ""
    # Passwords of Redis' ACL users (deploy/redis/users_acl.sh) the tests' own commands use.
    redis_go_service_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    redis_monitor_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    # Host numbers in the subnet, fixed in compose.yaml (STACK_PY_SERVICE_IP).
    PY_SERVICE: ClassVar[int] = 11
    PY_REDIS_SERVICE: ClassVar[int] = 12
    PY_FLASK_SERVICE: ClassVar[int] = 13

    def address(self, host: int) -> str:
        return f"10.213.{self.net}.{host}"

    @property
    def nginx(self) -> str:
        return loopback(self.nginx_port)

    @property
    def prometheus(self) -> str:
        return loopback(self.prometheus_port)

    @property
    def redis_variant(self) -> str:
        return loopback(self.redis_variant_port)

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
        return dict(
            os.environ,
            COMPOSE_PROJECT_NAME=self.project,
            COMPOSE_PROFILES=self.profiles,
            STACK_NGINX_PORT=str(self.nginx_port),
            STACK_PROMETHEUS_PORT=str(self.prometheus_port),
            STACK_REDIS_VARIANT_PORT=str(self.redis_variant_port),
            STACK_GRAFANA_PORT=str(self.grafana_port),
            STACK_ALERTMANAGER_PORT=str(self.alertmanager_port),
            STACK_SUBNET=f"{self.address(0)}/24",
            STACK_IP_RANGE=f"{self.address(128)}/25",
            STACK_GO_REPLICAS=str(self.go_replicas),
            STACK_GO_CACHE_TTL=self.go_cache_ttl,
            STACK_GO_REDIS_TIMEOUT=self.go_redis_timeout,
            STACK_PY_SERVICE_IP=self.address(self.PY_SERVICE),
            STACK_PY_REDIS_SERVICE_IP=self.address(self.PY_REDIS_SERVICE),
            STACK_PY_FLASK_SERVICE_IP=self.address(self.PY_FLASK_SERVICE),
            STACK_PY_CACHE_TTL=str(self.py_cache_ttl),
            # The tests' load comes from this machine, which Nginx sees as the network's gateway
            # (published ports, container addresses), thousands of requests a second: not
            # limited, as a client on the internet would be (nginx_test checks the limits).
            STACK_NGINX_UNLIMITED_CLIENTS=f"{self.address(0)}/24",
            **(
                {"STACK_ALERT_WEBHOOK_URL": self.alert_webhook_url}
                if self.alert_webhook_url
                else {}
            ),
            # compose.yaml refuses to load without these; stack.sh sets its own for `up`, and the
            # tests' own compose commands (ps, stop, start) create no container.
            STACK_ALERT_WEBHOOK_URL_FILE=os.devnull,
            STACK_NGINX_UNLIMITED_CLIENTS_FILE=os.devnull,
            # Where `up` put them: a Go replica the tests scale out mounts its own.
            STACK_SECRETS_DIR=str(self.secrets_dir),
            # Given, not generated into ~/.config (the tests talk to Redis as its users).
            STACK_GRAFANA_ADMIN_PASSWORD=os.environ.get(
                "STACK_GRAFANA_ADMIN_PASSWORD", secrets.token_urlsafe(18)
            ),
            STACK_REDIS_GO_SERVICE_PASSWORD=self.redis_go_service_password,
            STACK_REDIS_PY_SERVICE_PASSWORD=secrets.token_urlsafe(18),
            STACK_REDIS_MONITOR_PASSWORD=self.redis_monitor_password,
        )

    def script(self, *args: str) -> None:
        """deploy/stack.sh, as `bazel run //deploy:up` and `:down` run it."""
        subprocess.run([str(RUNFILES / "deploy/stack.sh"), *args], check=True, env=self.env())

    def compose(self, *args: str) -> str:
        result = subprocess.run(
            ["docker", "compose", "-f", str(WORKSPACE / "deploy/compose.yaml"), *args],
            capture_output=True,
            text=True,
            env=self.env(),
        )
        if result.returncode:
            raise AssertionError(f"docker compose {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def nginx_direct(self) -> str:
        """Nginx's own address on the stack's network (no published port, no userland proxy)."""
        (settings,) = self.container("nginx")["NetworkSettings"]["Networks"].values()
        return f"http://{settings['IPAddress']}:8080"

    def container(self, service: str) -> dict:
        """`docker inspect` of a service's container."""
        container_id = self.compose("ps", "--all", "--quiet", service).strip()
        assert container_id, f"no container for {service}"
        out = subprocess.run(
            ["docker", "inspect", container_id], check=True, capture_output=True, text=True
        ).stdout
        return json.loads(out)[0]

    def containers(self, service: str) -> list[dict]:
        """`docker inspect` of a service's running containers (one per replica), by name."""
        ids = self.compose("ps", "--quiet", service).split()
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", *ids], check=True, capture_output=True, text=True
        ).stdout
        return sorted(json.loads(out), key=lambda c: c["Name"])

    def prometheus_query(self, expr: str) -> list[dict]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        payload = json.loads(http_request(url).body)
        assert payload["status"] == "success", payload
        return payload["data"]["result"]


@contextlib.contextmanager
def running(stack: Stack, loaders: Sequence[str] = LOADERS) -> Iterator[Stack]:
    """The stack up for the block (deploy/stack.sh up with the images' loaders), then down with
    its volumes: also when the block fails, and when `up` itself fails half-way."""
    try:
        stack.script("up", *loaders)
        yield stack
    finally:
        stack.script("down", "--volumes")


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


def memory_usage() -> dict[str, int]:
    """Each running container's memory use in bytes (its tmpfs mounts included), by container
    name (`docker stats`)."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    usage = {}
    for line in out.splitlines():
        name, used = line.split()[:2]  # "cache-platform-nginx-1 12.5MiB / 192MiB"
        number = used.rstrip(string.ascii_letters)
        usage[name] = int(float(number) * UNITS[used[len(number) :]])
    return usage
