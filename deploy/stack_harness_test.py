"""The stack harness's own cases, against the real Docker engine (no images needed): each run
claims a subnet the engine accepted, a run killed outright is cleaned up by the next, and a port
the engine refuses is replaced (deploy/stack_harness.py). SIGTERM's teardown:
//tools/testing/python:ownership_test."""

import ipaddress
import json
import re
import secrets
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deploy import stack_harness
from deploy.stack_harness import (
    Ports,
    Stack,
    StackSettings,
    claim_subnet,
    docker,
    free_ports,
    remove_abandoned_runs,
    tear_down,
    up,
)
from tools.testing.python.ownership import OWNER_LABEL, owner_id

# This test's own /24s, clear of the ones the stack tests take (stack_harness.SUBNETS), so that
# it runs beside them.
HARNESS_SUBNETS = tuple(ipaddress.ip_network("10.213.112.0/20").subnets(new_prefix=24))
assert not any(s.overlaps(t) for s in HARNESS_SUBNETS for t in stack_harness.SUBNETS)


def network(name: str) -> dict | None:
    result = docker("network", "inspect", name, check=False)
    return json.loads(result.stdout)[0] if not result.returncode else None


def project_name() -> str:
    return f"cache-platform-harness-{secrets.token_hex(4)}"


def dead_owner() -> str:
    """The owner_id of a process that has exited."""
    process = subprocess.Popen(["sleep", "60"])
    owner = owner_id(process.pid)
    process.kill()
    process.wait()
    assert owner
    assert owner_id(process.pid) is None
    return owner


@pytest.fixture
def projects() -> Iterator[list[str]]:
    """Projects a test makes, torn down after it whatever happened."""
    made: list[str] = []
    yield made
    for project in made:
        tear_down(project)


@pytest.fixture
def foreign_networks() -> Iterator[list[str]]:
    """Networks a test makes as another tool would, removed after it."""
    made: list[str] = []
    yield made
    for name in made:
        docker("network", "rm", name, check=False)


def occupy(foreign_networks: list[str]) -> ipaddress.IPv4Network:
    """A /24 of this test's range, taken by a network of no run's (claimed like a run's, so that
    two copies of this test never take the same one)."""
    name = f"cache-platform-harness-foreign-{secrets.token_hex(4)}"
    foreign_networks.append(f"{name}_default")
    return claim_subnet(name, HARNESS_SUBNETS)


def test_runs_at_once_get_subnets_of_their_own_and_give_them_back(projects: list[str]) -> None:
    projects.extend(project_name() for _ in range(4))
    with ThreadPoolExecutor(4) as pool:
        subnets = list(pool.map(lambda p: claim_subnet(p, HARNESS_SUBNETS), projects))
    assert len(set(subnets)) == 4, subnets
    for project, subnet in zip(projects, subnets, strict=True):
        inspected = network(f"{project}_default")
        assert inspected, project
        (config,) = inspected["IPAM"]["Config"]
        assert ipaddress.ip_network(config["Subnet"]) == subnet
        # Compose's labels: `up` takes it for the project's network, `down` removes it.
        assert inspected["Labels"]["com.docker.compose.project"] == project
        assert inspected["Labels"]["com.docker.compose.network"] == "default"
        assert inspected["Labels"][OWNER_LABEL] == owner_id()
    for project in projects:
        assert tear_down(project) == []
        assert network(f"{project}_default") is None


def test_a_subnet_the_engine_refuses_is_skipped(
    projects: list[str], foreign_networks: list[str]
) -> None:
    first, second, third = (occupy(foreign_networks) for _ in range(3))
    # The second given back: the only one of the three the engine accepts.
    docker("network", "rm", foreign_networks.pop(1))
    projects.append(project_name())
    assert claim_subnet(projects[0], (first, second, third)) == second


def test_no_subnet_left_is_a_clear_error(projects: list[str], foreign_networks: list[str]) -> None:
    subnet = occupy(foreign_networks)
    projects.append(project_name())
    with pytest.raises(AssertionError, match="every candidate subnet is taken"):
        claim_subnet(projects[0], (subnet,))
    assert network(f"{projects[0]}_default") is None


def test_abandoned_runs_are_removed_and_live_ones_kept(projects: list[str]) -> None:
    abandoned, live = project_name(), project_name()
    projects.extend((abandoned, live))
    claim_subnet(abandoned, HARNESS_SUBNETS, owner=dead_owner())
    claim_subnet(live, HARNESS_SUBNETS)
    # A volume as Compose makes one for the project (compose.yaml's prometheus-data).
    volume = f"{abandoned}_prometheus-data"
    docker(
        "volume",
        "create",
        "--label",
        f"com.docker.compose.project={abandoned}",
        "--label",
        "com.docker.compose.volume=prometheus-data",
        volume,
    )
    remove_abandoned_runs()
    assert network(f"{abandoned}_default") is None
    assert docker("volume", "inspect", volume, check=False).returncode
    assert network(f"{live}_default") is not None


def test_up_picks_new_ports_while_the_engine_refuses_one(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = fake_stack_sh(
        tmp_path,
        f"""
        echo "$STACK_NGINX_PORT" >> {calls}
        if [[ $(wc -l < {calls}) -lt 3 ]]; then
          echo "Error response from daemon: driver failed programming external connectivity: \\
        Bind for 127.0.0.1:$STACK_NGINX_PORT failed: port is already allocated" >&2
          exit 1
        fi
        """,
    )
    stack = Stack(StackSettings(name="t"), "p", stack_harness.SUBNETS[0], Ports.pick())
    running = up(stack, [], script=script)
    ports = [int(line) for line in calls.read_text().split()]
    assert len(ports) == 3
    assert len(set(ports)) == 3
    assert running.ports.nginx == ports[-1]


def test_up_fails_at_once_on_anything_else(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = fake_stack_sh(tmp_path, f"echo called >> {calls}; echo 'no such image' >&2; exit 1")
    stack = Stack(StackSettings(name="t"), "p", stack_harness.SUBNETS[0], Ports.pick())
    with pytest.raises(AssertionError, match=re.escape("deploy/stack.sh up exited 1")):
        up(stack, [], script=script)
    assert calls.read_text().split() == ["called"]


def test_free_ports_are_distinct_unused_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port < low for port in ports) or low < 20_000
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def fake_stack_sh(directory: Path, body: str) -> Path:
    script = directory / "stack.sh"
    script.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script
