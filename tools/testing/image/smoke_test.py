"""Smoke test of one app image in a real Docker engine: load it, run it, ask it for /healthz
and /time. Starts an engine first if none answers (tools/rules/docker/engine.sh).

Each run has a container of its own, cache-platform-smoke-<image>-<8 hex digits>, so that copies of
the test (--runs_per_test, two clones, CI beside a developer) never meet; it goes when the run
ends, also when it fails or gets SIGTERM, and one a run killed outright left is removed by the next
run (its owner process is gone: tools/testing/python/ownership.py).

Inputs, from image_smoke_test (tools/testing/image/smoke_test.bzl), in the environment: LOADER (the
image's oci_load), TAG (its repo tag) and PORT (the container port it serves on).
"""

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tools.testing.python.ownership import (
    OWNER_LABEL,
    owner_alive,
    owner_id,
    sigterm_raises_keyboard_interrupt,
)
from tools.testing.python.services import HEALTH_TIMEOUT_S, wait_healthy
from tools.testing.python.support import http_request, wait_until

LOADER, TAG, PORT = os.environ["LOADER"], os.environ["TAG"], os.environ["PORT"]
IMAGE = TAG.split("/")[-1].replace(":", "-")
# On each run's container: the image's name, which the abandoned-container sweep looks for.
SMOKE_LABEL = "org.cache-platform.smoke-test"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def remove_abandoned_containers() -> None:
    """Removes the smoke containers of runs whose process is gone (SIGKILL gives no teardown),
    whichever clone or image they came from; a live run's container is never touched."""
    listed = docker("ps", "--all", "--filter", f"label={SMOKE_LABEL}",
                    "--format", f'{{{{.ID}}}} {{{{.Label "{OWNER_LABEL}"}}}}')  # fmt: skip
    for line in listed.splitlines():
        container, _, owner = line.partition(" ")
        if not owner or not owner_alive(owner):
            subprocess.run(["docker", "rm", "--force", container], capture_output=True)


def logs(name: str) -> str:
    """The end of the container's log."""
    command = ["docker", "logs", "--tail", "20", name]
    result = subprocess.run(command, capture_output=True, text=True)
    return result.stdout + result.stderr


def running(name: str) -> None:
    """Fails at once, with the container's log, if it is no longer running."""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
    if not state["Running"]:
        raise AssertionError(
            f"{name} stopped ({state['Status']}, exit code {state['ExitCode']}):\n{logs(name)}"
        )


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """This run's container of the image, running; removed afterwards."""
    with sigterm_raises_keyboard_interrupt():
        subprocess.run(["tools/rules/docker/engine.sh"], check=True)
        subprocess.run([LOADER], check=True)
        remove_abandoned_containers()
        name = f"cache-platform-smoke-{IMAGE}-{secrets.token_hex(4)}"
        try:
            # Published on a free loopback port; read-only root as in the stack.
            docker("run", "--detach", "--name", name,
                   "--label", f"{SMOKE_LABEL}={IMAGE}", "--label", f"{OWNER_LABEL}={owner_id()}",
                   "--read-only", "--tmpfs", "/tmp",
                   "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                   "--publish", f"127.0.0.1::{PORT}", TAG)  # fmt: skip
            yield name
        finally:
            subprocess.run(["docker", "rm", "--force", name], capture_output=True)


@pytest.fixture(scope="module")
def base(container: str) -> str:
    """The container's base URL on loopback, once its /healthz answers 200."""
    running(container)
    host_port = docker("port", container, f"{PORT}/tcp").splitlines()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{host_port}"

    wait_healthy(url, lambda: running(container), lambda: logs(container))
    return url


def test_healthz(base: str) -> None:
    assert http_request(base + "/healthz").status == 200


def test_time_text_and_json(base: str) -> None:
    text = http_request(base + "/time")
    assert text.status == 200
    assert RFC3339.search(text.text.strip())
    answer = http_request(base + "/time", headers={"Accept": "application/json"})
    assert answer.status == 200
    assert RFC3339.search(json.loads(answer.text)["time"])


def test_healthcheck_passes(container: str, base: str) -> None:
    # The image's own HEALTHCHECK (exec form: no shell in the image), first run by hand for a
    # clear error, then as the engine runs it, every Interval: the container turns healthy.
    config = json.loads(docker("inspect", "--format", "{{json .Config.Healthcheck}}", container))
    test = config["Test"]
    assert test[0] == "CMD", test
    run = subprocess.run(["docker", "exec", container, *test[1:]], capture_output=True, text=True)
    assert run.returncode == 0, f"{test[1:]}: {run.stderr}"
    # The first check runs one Interval after the start (durations in nanoseconds); a status of
    # "unhealthy" may still turn, so only the bound ends the wait.
    health = ("inspect", "--format", "{{.State.Health.Status}}", container)
    try:
        wait_until(
            lambda: docker(*health) == "healthy",
            timeout_s=HEALTH_TIMEOUT_S + (config["Interval"] + config["Timeout"]) / 1e9,
            interval_s=0.5,
            what="Docker to report the container healthy",
        )
    except TimeoutError as e:
        log = docker("inspect", "--format", "{{json .State.Health.Log}}", container)
        raise AssertionError(f"{e}; checks: {log}") from e


def test_runs_as_nonroot(container: str) -> None:
    assert docker("inspect", "--format", "{{.Config.User}}", container) not in ("", "0", "root")
