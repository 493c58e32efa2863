"""Metrics from several processes sharing PROMETHEUS_MULTIPROC_DIR add up in one scrape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from py_service.tests.support import child_process_env, sample_sum

# prometheus_client picks multiprocess mode from the environment when first
# imported, so each role runs in a fresh interpreter rather than in this one.
SERVE = """
import sys
from py_service.app import create_app

client = create_app().test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/static-text").status_code == 200
"""
SCRAPE = """
import sys
from py_service.app import create_app

sys.stdout.write(create_app().test_client().get("/metrics").text)
"""


def run_python(code: str, *args: str, multiproc_dir: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=child_process_env(PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


def test_one_scrape_sums_requests_of_two_processes(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()

    run_python(SERVE, "3", multiproc_dir=multiproc_dir)
    run_python(SERVE, "4", multiproc_dir=multiproc_dir)
    scraped = run_python(SCRAPE, multiproc_dir=multiproc_dir)

    assert len(list(multiproc_dir.glob("counter_*.db"))) >= 2  # one file per process
    assert sample_sum(scraped, "http_requests_total", handler="/static-text") == 7
    assert sample_sum(scraped, "http_request_duration_seconds_count", handler="/static-text") == 7


def test_a_value_file_being_created_does_not_fail_the_scrape(tmp_path: Path) -> None:
    # A worker that gunicorn is starting has opened its value file but not yet sized it (or died
    # right then, leaving it empty): prometheus_client's reader fails on it ("unpack_from
    # requires a buffer of at least 4 bytes"), and every scrape answered 500 while it lasted.
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()
    run_python(SERVE, "5", multiproc_dir=multiproc_dir)
    (multiproc_dir / "counter_99999.db").touch()
    (multiproc_dir / "histogram_99999.db").write_bytes(b"\x00\x00")

    scraped = run_python(SCRAPE, multiproc_dir=multiproc_dir)

    assert sample_sum(scraped, "http_requests_total", handler="/static-text") == 5
