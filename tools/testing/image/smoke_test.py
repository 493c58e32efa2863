"""Smoke test of one app image in a real Docker engine: load it, run it, ask it for /healthz
and /time. Starts an engine first if none answers (tools/rules/docker/engine.sh).

Inputs, from image_smoke_test (tools/testing/image/smoke_test.bzl), in the environment: LOADER (the
image's oci_load), TAG (its repo tag) and PORT (the container port it serves on).
"""

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from tools.testing.python.support import http_request, wait_until

LOADER, TAG, PORT = os.environ["LOADER"], os.environ["TAG"], os.environ["PORT"]
NAME = "cache-platform-smoke-" + TAG.split("/")[-1].replace(":", "-")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """The running container's base URL on loopback; the container is removed afterwards."""
    subprocess.run(["tools/rules/docker/engine.sh"], check=True)
    subprocess.run([LOADER], check=True)
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
    try:
        # Published on a free loopback port; read-only root as in the stack.
        docker("run", "--detach", "--name", NAME, "--read-only", "--tmpfs", "/tmp",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
               "--publish", f"127.0.0.1::{PORT}", TAG)  # fmt: skip
        host_port = docker("port", NAME, f"{PORT}/tcp").splitlines()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{host_port}"

        def healthy() -> bool:
            return http_request(url + "/healthz").status == 200

        try:
            wait_until(healthy, timeout_s=30, interval_s=0.3, what=f"a 200 from {url}/healthz")
        except TimeoutError as e:
            raise AssertionError(f"{e}\n" + docker("logs", NAME)) from e
        yield url
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)


def test_healthz(base: str) -> None:
    assert http_request(base + "/healthz").status == 200


def test_time_text_and_json(base: str) -> None:
    text = http_request(base + "/time")
    assert text.status == 200
    assert RFC3339.search(text.text.strip())
    answer = http_request(base + "/time", headers={"Accept": "application/json"})
    assert answer.status == 200
    assert RFC3339.search(json.loads(answer.text)["time"])


def test_healthcheck_passes(base: str) -> None:
    # The image's own HEALTHCHECK (exec form: no shell in the image), first run by hand for a
    # clear error, then as the engine runs it, every Interval: the container turns healthy.
    config = json.loads(docker("inspect", "--format", "{{json .Config.Healthcheck}}", NAME))
    test = config["Test"]
    assert test[0] == "CMD", test
    run = subprocess.run(["docker", "exec", NAME, *test[1:]], capture_output=True, text=True)
    assert run.returncode == 0, f"{test[1:]}: {run.stderr}"
    # Durations are in nanoseconds; the first check runs one Interval after the start.
    health = ("inspect", "--format", "{{.State.Health.Status}}", NAME)
    try:
        wait_until(
            lambda: docker(*health) == "healthy",
            timeout_s=(config["Interval"] + config["Timeout"]) / 1e9 + 10,
            interval_s=0.5,
            what="Docker to report the container healthy",
        )
    except TimeoutError as e:
        log = docker("inspect", "--format", "{{json .State.Health.Log}}", NAME)
        raise AssertionError(f"{e}; checks: {log}") from e


def test_runs_as_nonroot(base: str) -> None:
    assert docker("inspect", "--format", "{{.Config.User}}", NAME) not in ("", "0", "root")
