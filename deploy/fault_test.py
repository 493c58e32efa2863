"""How the stack fails, in a real Docker engine: the apps and Redis stopped, a 60 s load, SIGTERM
under load, and a scan of random paths. Brings the stack up with the `redis` profile and a short
Python TTL (STACK.py_cache_ttl=5, so an entry goes stale in seconds), tears it down at the end.

Bad input (oversized headers and URIs, unknown methods, traversal, encoded slashes, HTTP/1.0
without Host, slow clients) is deploy/nginx/nginx_test.py's, against the same nginx.conf.
"""

import http.client
import json
import os
import random
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from deploy.stack_harness import (
    LOADGEN,
    Stack,
    loadgen,
    memory_usage,
    metric_samples,
    running,
)
from tools.testing.python.support import Response, free_port, http_request, wait_until

# A project, free ports and a subnet of its own: runs beside e2e_test and the user's own stack. The
# Python TTL is short so that an entry goes stale in seconds.
STACK = Stack(
    project="cache-platform-fault",
    nginx_port=free_port(),
    prometheus_port=free_port(),
    redis_variant_port=free_port(),
    grafana_port=free_port(),
    alertmanager_port=free_port(),
    net=49,
    profiles="redis",
    py_cache_ttl=5,
)
NGINX = STACK.nginx
NGINX_READ_TIMEOUT = 3  # s: proxy_read_timeout in deploy/nginx/nginx.conf
SERVICES = (
    "go-service",
    "py-service",
    "redis",
    "py-service-redis",
    "nginx",
    "prometheus",
    "alertmanager",
)
MIXED = [
    f"{NGINX}/go/",
    f"{NGINX}/go/static-text",
    f"{NGINX}/go/time",
    f"{NGINX}/python/",
    f"{NGINX}/python/static-text",
    f"{NGINX}/python/time",
]


def random_path(rng: random.Random) -> str:
    """A path no route knows: a letter, then up to 40 URL-safe characters."""
    alphabet = string.ascii_letters + string.digits + "-_.~"
    return "x" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running(STACK):
        yield STACK


@pytest.fixture(autouse=True)
def healthy_stack(stack: Stack) -> None:
    """Each test starts from a healthy stack, whatever the one before it left."""
    for service in SERVICES:
        wait_until(
            lambda s=service: healthy(s), timeout_s=90, interval_s=0.5, what=f"{service} healthy"
        )


def test_python_stopped_serves_stale_then_fresh() -> None:
    # A response that is the stored entry itself (not a stale one being replaced meanwhile).
    first = http_request(f"{NGINX}/python/time")
    while first.headers.get("X-Cache-Status") not in ("MISS", "EXPIRED", "HIT"):
        first = http_request(f"{NGINX}/python/time")
    assert first.status == 200
    time.sleep(STACK.py_cache_ttl + 1)  # the entry is now expired, and kept
    STACK.compose("stop", "py-service")
    try:
        for _ in range(5):
            stale = http_request(f"{NGINX}/python/time")
            assert stale.status == 200
            assert stale.text == first.text
            # STALE, or UPDATING while Nginx's background refresh is still trying the app.
            assert stale.headers.get("X-Cache-Status") in ("STALE", "UPDATING")
    finally:
        STACK.compose("start", "py-service")
    wait_until(
        lambda: http_request(f"{NGINX}/python/time").text != first.text,
        timeout_s=60,
        interval_s=0.5,
        what="a fresh /python/time after the app returns",
    )


def test_go_stopped_gives_a_short_502_then_recovers_without_nginx_restart() -> None:
    nginx_started = STACK.container("nginx")["State"]["StartedAt"]
    assert http_request(f"{NGINX}/go/time").status == 200
    STACK.compose("stop", "go-service")
    try:
        # Docker's DNS forgets a stopped replica: once Nginx's cached answer (at most 1 s) is
        # gone the name has no address and Nginx answers at once; the first request may still
        # try the stopped replica's address, up to the 250 ms connect timeout.
        for attempt in range(5):
            started = time.monotonic()
            down = http_request(f"{NGINX}/go/time")
            assert down.status == 502
            assert down.text == "bad gateway: the go service is not answering\n"
            assert down.headers["Content-Type"].startswith("text/plain")
            if attempt:
                assert time.monotonic() - started < 0.5
    finally:
        STACK.compose("start", "go-service")
    wait_until(
        lambda: http_request(f"{NGINX}/go/time").status == 200,
        timeout_s=60,
        interval_s=0.5,
        what="/go/time answering again",
    )
    assert STACK.container("nginx")["State"]["StartedAt"] == nginx_started


def test_redis_stopped_serves_uncached_counts_errors_then_recovers() -> None:
    def errors() -> float:
        return metric_samples(f"{STACK.redis_variant}/metrics").get("redis_errors_total", 0.0)

    http_request(f"{STACK.redis_variant}/time")
    assert http_request(f"{STACK.redis_variant}/time").headers.get("X-Cache") == "HIT"
    errors_before = errors()
    STACK.compose("stop", "redis")
    try:
        for _ in range(3):
            uncached = http_request(f"{STACK.redis_variant}/time")
            assert uncached.status == 200
            assert uncached.headers.get("X-Cache") == "MISS"
        assert errors() - errors_before >= 3
    finally:
        STACK.compose("start", "redis")
    wait_until(
        lambda: http_request(f"{STACK.redis_variant}/time").headers.get("X-Cache") == "HIT",
        timeout_s=60,
        interval_s=0.5,
        what="a Redis HIT again",
    )


def test_60s_of_200_connections_over_mixed_endpoints() -> None:
    services = ("go-service", "py-service", "nginx", "prometheus", "alertmanager")
    limits = {s: STACK.container(s)["HostConfig"]["Memory"] for s in services}
    restarts = {s: STACK.container(s)["RestartCount"] for s in services}
    peaks: dict[str, int] = {}
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(2):  # ends with the load, which is bounded
            for name, used in memory_usage().items():
                peaks[name] = max(peaks.get(name, 0), used)

    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    try:
        report = loadgen(*MIXED, connections=200, seconds=60)
    finally:
        done.set()
        sampler.join()
    print(json.dumps(report), file=sys.stderr)

    assert report["requests"] > 1000
    assert report["failed"] == 0, report
    assert report["not_connected"] == 0, report
    assert not [code for code in report["status"] if code.startswith("5")], report
    for service in services:
        state = STACK.container(service)
        name = state["Name"].lstrip("/")
        assert name in peaks, f"{service}: no memory sample"
        assert peaks[name] < limits[service], f"{service} peaked at {peaks[name]}"
        assert not state["State"]["OOMKilled"], service
        assert state["RestartCount"] == restarts[service], service


def test_sigterm_under_load_loses_no_request() -> None:
    # Straight to each app (no Nginx in between to retry or to answer 502 for it), for
    # SIGTERM_ROUNDS rounds (environment; 1 by default, 20 to show the test is not flaky).
    # `compose stop` sends SIGTERM and returns once the container exited; the load ends then
    # too, since requests to an address that no longer exists say nothing about the app.
    #
    # What it guarantees: every request an app received was answered in full. The load
    # generator names each failed attempt's connection (fresh or reused, request written or
    # not), so a request lost on an idle keep-alive connection closed at the stop, or on a
    # connection a crashing worker held, counts as failed, not as never sent. Refusals after
    # the listener closed are never-sent requests: not_connected.
    rounds = int(os.environ.get("SIGTERM_ROUNDS", "1"))
    for service, url in (
        ("go-service", f"{STACK.go_direct}/time"),
        ("py-service", f"{STACK.py_direct}/time"),
    ):
        for round_number in range(rounds):
            where = f"{service}, round {round_number}"
            report = load_through_a_stop(service, url)
            assert report["failed"] == 0, (where, report)
            assert report["status"].get("200", 0) > 100, (where, report)
            assert STACK.container(service)["State"]["ExitCode"] == 0, where
            wait_until(
                lambda s=service: healthy(s),
                timeout_s=60,
                interval_s=0.5,
                what=f"{service} healthy again",
            )


def test_sigterm_of_python_behind_nginx_is_not_seen_by_clients() -> None:
    # As deployed: Nginx in front, serving its copy while the app goes away and comes back.
    report = load_through_a_stop("py-service", f"{NGINX}/python/time", restart=True)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report


def test_sigterm_of_go_behind_nginx_cuts_no_request() -> None:
    # The Go tier has no copy in Nginx: while its only replica is away, requests get a short
    # answer (an outage, not a loss): 502 once Docker's DNS has no address for it, 504 when
    # Nginx's cached answer (at most 1 s) still names the gone replica and the connect times
    # out (250 ms). None is reset or cut short, and every request sent before the stop is
    # answered 200. (With more replicas the others answer: //deploy:scale_test.)
    report = load_through_a_stop("go-service", f"{NGINX}/go/time", restart=True)
    assert set(report["status"]) <= {"200", "502", "504"}, report
    assert report["status"].get("200", 0) > 100, report
    outage = report["status"].get("502", 0) + report["status"].get("504", 0)
    assert report["failed"] - outage == 0, report
    assert report["not_connected"] == 0, report


def test_a_hung_app_holds_no_client_longer_than_the_read_timeout() -> None:
    # A stale copy in the cache and the app hung (paused: its kernel still accepts
    # connections, nothing answers). Nginx serves the stale copy at once and refreshes it in
    # the background, on the client's connection: the next request on that connection waits
    # for the refresh, which proxy_read_timeout (3 s, nginx.conf) ends.
    wait_until(
        lambda: http_request(f"{NGINX}/python/time").headers.get("X-Cache-Status") == "HIT",
        timeout_s=30,
        interval_s=0.5,
        what="a cached /python/time",
    )
    time.sleep(STACK.py_cache_ttl + 1)  # stale now
    STACK.compose("pause", "py-service")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", STACK.nginx_port, timeout=30)
        waits = []
        for _ in range(3):
            started = time.monotonic()
            connection.request("GET", "/python/time")
            response = connection.getresponse()
            response.read()
            waits.append(round(time.monotonic() - started, 2))
            assert response.status == 200
            assert response.getheader("X-Cache-Status") in ("STALE", "UPDATING")
        connection.close()
    finally:
        STACK.compose("unpause", "py-service")
    assert max(waits) < NGINX_READ_TIMEOUT + 1, waits


def test_nginx_starts_and_serves_whatever_else_is_down() -> None:
    # Each app stopped in turn, then Nginx restarted: it starts, the other route answers, the
    # stopped app's route gets its short 502 and comes back when the app does, with no second
    # restart.
    routes = {"go-service": "/go/time", "py-service": "/python/"}
    nginx = STACK.container("nginx")["Id"]
    for down, route in routes.items():
        STACK.compose("stop", down)
        try:
            subprocess.run(["docker", "restart", nginx], check=True, capture_output=True)
            wait_until(
                lambda: http_request(f"{NGINX}/healthz").status == 200,
                timeout_s=30,
                interval_s=0.5,
                what="nginx answering",
            )
            for service, path in routes.items():
                if path and service != down:
                    # The Go replicas' name is resolved by Nginx's resolver once its
                    # workers run (go-tier.conf: `resolve`), milliseconds after /healthz
                    # first answers; until then /go/ gets the fallback's 502.
                    wait_until(
                        lambda p=path: http_request(NGINX + p).status == 200,
                        timeout_s=5,
                        interval_s=0.5,
                        what=f"{path} answering",
                    )
            if route:
                started = time.monotonic()
                answer = http_request(NGINX + route)
                assert answer.status == 502, (down, answer)
                assert "service is not answering" in answer.text
                assert time.monotonic() - started < 3
        finally:
            STACK.compose("start", down)
        restarted = STACK.container("nginx")["State"]["StartedAt"]
        if route:
            wait_until(
                lambda r=route: http_request(NGINX + r).status == 200,
                timeout_s=60,
                interval_s=0.5,
                what=f"{route} back",
            )
        assert STACK.container("nginx")["State"]["StartedAt"] == restarted
        wait_until(lambda s=down: healthy(s), timeout_s=60, interval_s=0.5, what=f"{down} healthy")


def test_stopping_nginx_finishes_requests_in_flight() -> None:
    # The app slow (paused for ~1.5 s, under Nginx's 3 s read timeout), a request through
    # Nginx in flight, Nginx stopped 0.5 s in: Nginx stops gracefully (SIGQUIT, compose.yaml)
    # and the request is answered. With SIGTERM (fast shutdown) curl got an empty reply.
    answers: list[object] = []

    def fetch() -> None:
        try:
            answers.append(http_request(f"{NGINX}/python/", timeout_s=15))
        except OSError as error:  # an empty reply, a reset: a request cut off
            answers.append(error)

    app = STACK.container("py-service")["Id"]
    subprocess.run(["docker", "pause", app], check=True, capture_output=True)
    client = threading.Thread(target=fetch)
    stopper = threading.Thread(target=STACK.compose, args=("stop", "nginx"))
    try:
        client.start()
        time.sleep(0.5)
        stopper.start()
        time.sleep(1)
    finally:
        subprocess.run(["docker", "unpause", app], check=True, capture_output=True)
        client.join(timeout=20)
        if stopper.ident:  # started
            stopper.join(timeout=30)
        nginx = STACK.container("nginx")
        # Not `compose start`: it would first wait for the apps' health, which the pause
        # may have cost a check.
        subprocess.run(["docker", "start", nginx["Id"]], check=True, capture_output=True)
    assert not stopper.is_alive(), "compose stop nginx did not return"
    assert not nginx["State"]["Running"], "nginx was still running"
    assert nginx["State"]["ExitCode"] == 0
    (answer,) = answers
    assert isinstance(answer, Response), answer
    assert answer.status == 200, answer


def test_random_paths_grow_no_series_and_no_cache() -> None:
    rng = random.Random(20261129)
    metrics = {"go": f"{NGINX}/go/metrics", "python": f"{NGINX}/python/metrics"}

    def scan(count: int) -> list[tuple[str, int]]:
        """GET count random paths under each service on 8 connections: (path, status)s."""
        paths = [f"/{service}/{random_path(rng)}" for service in metrics for _ in range(count)]

        def fetch(chunk: list[str]) -> list[tuple[str, int]]:
            connection = http.client.HTTPConnection("127.0.0.1", STACK.nginx_port, timeout=10)
            try:
                answered = []
                for path in chunk:
                    connection.request("GET", path)
                    response = connection.getresponse()
                    response.read()
                    answered.append((path, response.status))
                return answered
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:
            chunks = pool.map(fetch, [paths[i::8] for i in range(8)])
            return [answer for chunk in chunks for answer in chunk]

    scan(20)  # the first 404s create their series; from here on nothing may
    before = {service: set(metric_samples(url)) for service, url in metrics.items()}
    go_entries = metric_samples(metrics["go"])["cache_entries"]

    answers = scan(5000)
    assert len(answers) == 10_000
    assert {status for _, status in answers if not 400 <= status < 500} == set()
    for service, url in metrics.items():
        assert set(metric_samples(url)) - before[service] == set(), service
    assert metric_samples(metrics["go"])["cache_entries"] <= go_entries
    # Nginx stored none of them: asked again, each is still a 404 that skipped the cache.
    for path in [p for p, _ in answers if p.startswith("/python/")][:50]:
        again = http_request(NGINX + path)
        assert (again.status, again.headers.get("X-Cache-Status")) == (404, "BYPASS")


def load_through_a_stop(service: str, url: str, restart: bool = False) -> dict[str, Any]:
    """A 50-connection load on url while `compose stop` sends SIGTERM to service (after 3 s);
    the load ends once the container exited, or, with restart, once it is healthy again. The
    service is started again either way. Returns the load generator's report."""
    load = subprocess.Popen(
        [LOADGEN, "-connections=50", "-duration=90s", "-timeout=10s", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        STACK.compose("stop", service)  # SIGTERM; returns once the container exited
        if restart:
            STACK.compose("start", service)
            wait_until(
                lambda: healthy(service),
                timeout_s=60,
                interval_s=0.5,
                what=f"{service} healthy again",
            )
    finally:
        load.send_signal(signal.SIGINT)
        report = json.loads(load.communicate(timeout=30)[0])
        if not restart:
            if report["failed"]:  # what the app said as it stopped: the evidence for a failure
                print(STACK.compose("logs", "--tail=80", service), file=sys.stderr)
            STACK.compose("start", service)
    print(service, url, json.dumps(report), file=sys.stderr)
    return report


def healthy(service: str) -> bool:
    return STACK.container(service)["State"].get("Health", {}).get("Status") == "healthy"
