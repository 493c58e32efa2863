"""Test helpers: locating files, child environments, metrics parsing, a fake clock, redis-server.
(Bounded waits, free ports and HTTP requests: tools/testing/python/support.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from tools.testing.python.support import free_port, wait_until

# Directory of this file, symlinks kept: under Bazel it lies in a runfiles tree
# whose symlinks point back into the source tree, and only the runfiles tree
# has the data files next to it.
TESTS_DIR = Path(os.path.abspath(__file__)).parent
SERVICE_DIR = TESTS_DIR.parent
CONTRACT = Path("api") / "openapi.json"


def find_contract() -> Path:
    for directory in (TESTS_DIR, *TESTS_DIR.parents):
        if (directory / CONTRACT).is_file():
            return directory / CONTRACT
    raise FileNotFoundError(f"{CONTRACT} not found in {TESTS_DIR} or any parent")


def child_process_env(**overrides: str) -> dict[str, str]:
    """Environment for a child Python that can import everything this one can."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    env.update(overrides)
    return env


def samples(metrics_text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse a text exposition into {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def sample_sum(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples called name whose labels include labels."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample_name, sample_labels), value in samples(metrics_text).items()
        if sample_name == name and wanted <= sample_labels
    )


class FakeClock:
    """A clock the tests move by hand, starting at 2024-05-01T12:00:00Z."""

    def __init__(self, now: float = 1_714_564_800.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RedisServer:
    """A throwaway redis-server on a loopback port, without persistence; extra_args are added to
    its command line (ACL users: "--user", "NAME", "on", ">PASSWORD", ...)."""

    def __init__(self, executable: str, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.executable = executable
        self.workdir = workdir
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_timeout=0.5)
        try:
            wait_until(
                self._answers(probe),
                timeout_s=10,
                interval_s=0.05,
                what=f"redis-server on {self.port}",
            )
        finally:
            probe.close()

    def _answers(self, probe: redis.Redis) -> Callable[[], bool]:
        def ping() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, "redis-server exited during startup"
            try:
                return bool(probe.ping())
            except redis.AuthenticationError:  # the default user is off: it answers all the same
                return True
            except redis.ConnectionError:
                return False

        return ping

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1)
