"""End-to-end test of the stack: real Docker engine, real images, through Nginx on 127.0.0.1:80.

Brings the stack up with the same script as `bazel run //deploy:up`, checks both cache layers,
the stale-serving of Nginx with the Python container stopped, Prometheus targets and counters, and
every Grafana dashboard query against the live Prometheus; tears the stack down at the end.
"""

import json
import os
import secrets
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

NGINX = "http://127.0.0.1:80"
PROMETHEUS = "http://127.0.0.1:9090"
PROJECT = "cache-platform"
LOADERS = sys.argv[1:]
RUNFILES = Path.cwd()
WORKSPACE = Path(os.path.realpath("deploy/compose.yaml")).parent.parent
# compose.yaml refuses to start Grafana without one; stack.sh and compose below share it.
os.environ.setdefault("GRAFANA_ADMIN_PASSWORD", secrets.token_urlsafe(18))


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body


def get(url: str, timeout: float = 5) -> Response:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read().decode())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read().decode())


def stack(*args: str) -> None:
    subprocess.run([str(RUNFILES / "deploy/stack.sh"), *args], check=True)


def compose(*args: str) -> None:
    subprocess.run(
        ["docker", "compose", "-p", PROJECT, "-f", str(WORKSPACE / "deploy/compose.yaml"), *args],
        check=True,
        capture_output=True,
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def prometheus_query(expr: str) -> list[dict]:
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    payload = json.loads(get(url).body)
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


class StackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        stack("up", *LOADERS)

    @classmethod
    def tearDownClass(cls) -> None:
        stack("down", "--volumes")

    def test_1_go_time_is_cached_in_process_for_ttl(self) -> None:
        first = get(f"{NGINX}/go/time")
        self.assertEqual(first.status, 200)
        again = get(f"{NGINX}/go/time")
        self.assertEqual(again.headers.get("X-Cache"), "HIT")
        self.assertEqual(again.body, first.body)
        # Wait exactly until the entry is older than the 10 s TTL, not longer.
        time.sleep(max(0.0, 10 - int(again.headers["Age"])) + 1)
        self.assertNotEqual(get(f"{NGINX}/go/time").body, first.body)

    def test_2_python_time_miss_hit_stale_and_fresh(self) -> None:
        first = get(f"{NGINX}/python/time")
        self.assertEqual(first.status, 200)
        self.assertIn(first.headers.get("X-Cache-Status"), ("MISS", "EXPIRED"))
        hit = get(f"{NGINX}/python/time")
        self.assertEqual(hit.headers.get("X-Cache-Status"), "HIT")
        self.assertEqual(hit.body, first.body)
        filled = time.monotonic()

        # Let the 60 s entry expire, then stop the app: Nginx must answer from its stale copy.
        time.sleep(max(0.0, 61 - (time.monotonic() - filled)))
        compose("stop", "py-service")
        try:
            stale = get(f"{NGINX}/python/time")
            self.assertEqual(stale.status, 200)
            self.assertEqual(stale.body, first.body)
            self.assertEqual(stale.headers.get("X-Cache-Status"), "STALE")
        finally:
            compose("start", "py-service")
        wait_for(
            "a fresh /python/time after the app returns",
            lambda: get(f"{NGINX}/python/time").body != first.body,
            timeout=60,
        )

    def test_3_prometheus_targets_up_and_counters_moved(self) -> None:
        wait_for(
            "every Prometheus target up",
            lambda: all(t["health"] == "up" for t in self.targets()) and len(self.targets()) >= 4,
            timeout=60,
        )
        for query in (
            'sum(http_requests_total{job="go-service"})',
            'sum(http_requests_total{job="py-service"})',
            'sum(cache_requests_total{job="go-service"})',
        ):
            wait_for(f"{query} > 0", lambda q=query: self.value(q) > 0, timeout=30)

    def test_4_every_dashboard_query_returns_data(self) -> None:
        # Rates need two scrapes of traffic: send some, then give Prometheus a few intervals.
        for _ in range(50):
            for path in ("/go/time", "/go/static-text", "/python/time", "/python/static-text"):
                get(NGINX + path)
        checker = RUNFILES / "deploy/grafana/check_dashboards.py"
        dashboards = WORKSPACE / "deploy/grafana/dashboards"

        def all_queries_answer() -> bool:
            result = subprocess.run(
                [sys.executable, str(checker), "--prometheus", PROMETHEUS, str(dashboards)],
                capture_output=True,
                text=True,
            )
            self.last_check = result.stdout + result.stderr
            return result.returncode == 0

        try:
            wait_for("every dashboard query to return data", all_queries_answer, timeout=90)
        except AssertionError:
            self.fail(self.last_check)

    @staticmethod
    def targets() -> list[dict]:
        return json.loads(get(f"{PROMETHEUS}/api/v1/targets").body)["data"]["activeTargets"]

    @staticmethod
    def value(expr: str) -> float:
        result = prometheus_query(expr)
        return float(result[0]["value"][1]) if result else 0.0


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
