"""The real server: gunicorn with py_service/gunicorn.conf.py on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from py_service.tests.support import SERVICE_DIR, child_process_env, sample_sum
from tools.testing.python.support import free_port, http_request, wait_until

GUNICORN_CONFIG = SERVICE_DIR / "gunicorn.conf.py"
WORKERS = 2
# gunicorn may take graceful_timeout (20 s) to stop by design, more on a busy machine: this only
# stops a test from waiting on a server that hangs (15 s timed out 2 of 10 runs under load).
SHUTDOWN_BOUND_S = 60
STALE_VALUE_FILE = "counter_1.db"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    stdout: Path
    stderr: Path
    multiproc_dir: Path

    def get(self, path: str) -> tuple[int, str]:
        response = http_request(self.base_url + path)
        return response.status, response.text

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=SHUTDOWN_BOUND_S)


def gunicorn_command() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "py_service.wsgi:app"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()
    (multiproc_dir / STALE_VALUE_FILE).touch()  # left by an earlier run
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            gunicorn_command(),
            env=child_process_env(
                BIND=f"127.0.0.1:{port}",
                WEB_CONCURRENCY=str(WORKERS),
                GUNICORN_THREADS="2",
                PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
                CACHE_BACKEND="nginx",
            ),
            stdout=out,
            stderr=err,
            cwd=tmp_path,
        )
    running = Server(process, f"http://127.0.0.1:{port}", stdout, stderr, multiproc_dir)

    def ready() -> bool:
        assert process.poll() is None, f"gunicorn exited early:\n{stderr.read_text()}"
        # Wait for every worker too: gunicorn (27.0) can miss a worker that is
        # still being forked when SIGTERM arrives, and then waits out the
        # whole graceful_timeout before killing it.
        if stderr.read_text().count("Booting worker") < WORKERS:
            return False
        return running.get("/healthz")[0] == 200  # refused until a worker listens: retried

    try:
        wait_until(
            ready,
            timeout_s=30,
            interval_s=0.05,
            what="all gunicorn workers to boot and /healthz to answer",
        )
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serves_sums_metrics_and_stops_cleanly_on_sigterm(server: Server) -> None:
    status, body = server.get("/time")
    assert status == 200
    assert body.endswith("Z\n")
    for _ in range(19):
        assert server.get("/time")[0] == 200

    _, metrics = server.get("/metrics")
    # Each request is a new connection, so both workers serve some of them;
    # the scrape must add up every worker's count.
    assert sample_sum(metrics, "http_requests_total", handler="/time") == 20, metrics
    # prometheus_client's multiprocess directory: emptied at the start, removed at the exit.
    assert not (server.multiproc_dir / STALE_VALUE_FILE).exists()
    assert len(list(server.multiproc_dir.glob("counter_*.db"))) == WORKERS

    assert server.stop() == 0, server.stderr.read_text()
    assert not server.multiproc_dir.exists()
    access_log = [json.loads(line) for line in server.stdout.read_text().splitlines()]
    time_requests = [entry for entry in access_log if entry["path"] == "/time"]
    assert len(time_requests) == 20
    assert all(entry["status"] == "200" and entry["duration_s"] >= 0 for entry in time_requests)
    error_log = [json.loads(line) for line in server.stderr.read_text().splitlines()]
    assert any("Booting worker" in entry["message"] for entry in error_log)


ANSWERED = 100


def answered_time_requests(server: Server) -> float:
    return sample_sum(server.get("/metrics")[1], "http_requests_total", handler="/time")


def test_sigterm_under_load_loses_no_request(server: Server) -> None:
    # tools/dev/bench's load generator: 32 keep-alive connections, in a loop, until stopped.
    url = server.base_url + "/time"
    load = subprocess.Popen(
        [os.environ["LOADGEN"], "-connections=32", "-duration=30s", "-timeout=5s", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Stopped once the load has had ANSWERED answers, however long a busy machine takes.
        wait_until(
            lambda: answered_time_requests(server) >= ANSWERED,
            timeout_s=60,
            interval_s=0.1,
            what=f"{ANSWERED} answers to the load",
        )
        assert server.stop() == 0, server.stderr.read_text()
        time.sleep(0.5)  # clients keep trying: each must now be refused, not reset
    finally:
        load.send_signal(signal.SIGINT)
        report = json.loads(load.communicate(timeout=30)[0])

    assert report["status"].get("200", 0) >= ANSWERED, report
    # Every request was answered in full or never connected: none was cut off.
    assert report["failed"] == 0, report["errors"]
    assert report["not_connected"] > 0, "the load never saw the server stop listening"


def test_invalid_configuration_exits_with_one_line(tmp_path: Path) -> None:
    completed = subprocess.run(
        gunicorn_command(),
        env=child_process_env(CACHE_TTL="soon", BIND=f"127.0.0.1:{free_port()}"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "py_service: invalid configuration: CACHE_TTL must be a duration like 60s or 1m "
        "(Go's syntax; a plain number is seconds), got 'soon'"
    ]
