"""How the stack fails, in a real Docker engine: the apps and Redis stopped, a load of 200
connections, SIGTERM under load, and a scan of random paths. Brings a stack of its own up with the
`redis` profile and a short Python TTL (py_cache_ttl=5, so an entry goes stale in seconds), tears
it down at the end.

Nothing here bounds how fast the machine is: what a timeout must cut short is checked as "not
answered before the timeout, and well under ten times it", what must happen at once as "Nginx
tried no upstream" (its access log), loads by counts, not by how long they took.

Bad input (oversized headers and URIs, unknown methods, traversal, encoded slashes, HTTP/1.0
without Host, slow clients) is deploy/nginx/nginx_test.py's, against the same nginx.conf.
"""

import http.client
import json
import os
import random
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.stack_harness import (
    LOADGEN,
    Stack,
    StackSettings,
    docker,
    loadgen,
    memory_usage,
    metric_samples,
    running,
)
from tools.testing.python.support import Response, http_request, wait_until

SETTINGS = StackSettings(name="fault", profiles="redis", py_cache_ttl=5)
# deploy/nginx/nginx.conf: proxy_connect_timeout (the Python upstream's) and proxy_read_timeout.
NGINX_CONNECT_TIMEOUT = 2
NGINX_READ_TIMEOUT = 3
SERVICES = (
    "go-service",
    "py-service",
    "redis",
    "py-service-redis",
    "nginx",
    "prometheus",
    "alertmanager",
)
MIXED = (
    "/go/",
    "/go/static-text",
    "/go/time",
    "/python/",
    "/python/static-text",
    "/python/time",
)
TCP_TIME_WAIT = "06"  # the st column of /proc/net/tcp (include/net/tcp_states.h)
UPSTREAM_PORTS = {8080, 8000}  # the Go replicas', the Python apps'


def upstream_time_waits(pid: int) -> int:
    """Connections to or from an upstream port in TIME_WAIT in the network namespace of process
    pid: one per connection closed in the last minute (Linux keeps each 60 s)."""
    return sum(
        state == TCP_TIME_WAIT and bool({lp, rp} & UPSTREAM_PORTS)
        for _, lp, _, rp, state, _ in sockets(pid)
    )


def random_path(rng: random.Random) -> str:
    """A path no route knows: a letter, then up to 40 URL-safe characters."""
    alphabet = string.ascii_letters + string.digits + "-_.~"
    return "x" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def service_health(stack: Stack) -> dict[str, set[str]]:
    """Each service's containers' health: "healthy" for a running one whose check passes, else
    its state and health (e.g. "running/starting", "exited/"), from one `compose ps`."""
    health: dict[str, set[str]] = {}
    for service, state, check in stack.states():
        status = "healthy" if (state, check) == ("running", "healthy") else f"{state}/{check}"
        health.setdefault(service, set()).add(status)
    return health


def healthy(stack: Stack, *services: str) -> bool:
    health = service_health(stack)
    return all(health.get(service) == {"healthy"} for service in services)


def wait_healthy(stack: Stack, *services: str, timeout_s: float = 90) -> None:
    wait_until(
        lambda: healthy(stack, *services),
        timeout_s=timeout_s,
        interval_s=0.5,
        what=f"{', '.join(services)} healthy",
    )


def nginx_errors(stack: Stack, since: str) -> list[str]:
    """Nginx's error log lines (level error or worse) since `since` (Unix seconds)."""
    lines = stack.compose("logs", "--no-log-prefix", "--since", since, "nginx").splitlines()
    levels = ("[error]", "[crit]", "[alert]", "[emerg]")
    return [line for line in lines if any(level in line for level in levels)]


def nginx_log(stack: Stack, marker: str, count: int) -> list[dict[str, Any]]:
    """The access log's entries (nginx.conf's json format) of the `count` requests whose URI has
    `marker`, once Nginx wrote them all (it flushes its buffer every second)."""

    def entries() -> list[dict[str, Any]]:
        lines = stack.compose("logs", "--no-log-prefix", "nginx").splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{") and marker in line]
        return found if len(found) >= count else []

    return wait_until(entries, timeout_s=30, interval_s=0.5, what=f"{count} log lines {marker}")


def requests_counted(url: str, counter: str) -> float:
    """A request counter summed over its series, from a /metrics exposition."""
    return sum(v for name, v in metric_samples(url).items() if name.startswith(counter + "{"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running(SETTINGS) as stack:
        yield stack


@pytest.fixture(autouse=True)
def healthy_stack(stack: Stack) -> None:
    """Each test starts from a healthy stack, whatever the one before it left."""
    wait_healthy(stack, *SERVICES)


def test_python_stopped_serves_stale_then_fresh(stack: Stack) -> None:
    # A response that is the stored entry itself (not a stale one being replaced meanwhile).
    first = http_request(f"{stack.nginx}/python/time")
    while first.headers.get("X-Cache-Status") not in ("MISS", "EXPIRED", "HIT"):
        first = http_request(f"{stack.nginx}/python/time")
    assert first.status == 200
    # The entry expires (and is kept); no request may come meanwhile, or it would be refreshed.
    time.sleep(SETTINGS.py_cache_ttl + 1)
    stack.compose("stop", "py-service")
    try:
        for _ in range(5):
            stale = http_request(f"{stack.nginx}/python/time")
            assert stale.status == 200
            assert stale.text == first.text
            # STALE, or UPDATING while Nginx's background refresh is still trying the app.
            assert stale.headers.get("X-Cache-Status") in ("STALE", "UPDATING")
    finally:
        stack.compose("start", "py-service")
    wait_until(
        lambda: http_request(f"{stack.nginx}/python/time").text != first.text,
        timeout_s=60,
        interval_s=0.5,
        what="a fresh /python/time after the app returns",
    )


def test_go_stopped_gives_a_short_502_then_recovers_without_nginx_restart(stack: Stack) -> None:
    nginx_started = stack.container("nginx")["State"]["StartedAt"]
    assert http_request(f"{stack.nginx}/go/time").status == 200
    stack.compose("stop", "go-service")
    marker = f"stopped-{secrets.token_hex(4)}"
    try:
        for attempt in range(5):
            down = http_request(f"{stack.nginx}/go/time?{marker}-{attempt}", timeout_s=30)
            assert down.status == 502
            assert down.text == "bad gateway: the go service is not answering\n"
            assert down.headers["Content-Type"].startswith("text/plain")
    finally:
        stack.compose("start", "go-service")
    # Answered at once, not after a connect timeout: Docker's DNS forgets a stopped replica, and
    # once Nginx's cached answer (at most 1 s) is gone, or the replica failed once (max_fails=1),
    # Nginx goes straight to its fallback. Only the first request may still try the stopped
    # replica. $upstream_response_time has one entry per upstream tried.
    entries = sorted(nginx_log(stack, marker, 5), key=lambda entry: entry["uri"])
    tried = [len(entry["upstream_time"].split(",")) for entry in entries]
    assert tried[1:] == [1, 1, 1, 1], entries
    wait_until(
        lambda: http_request(f"{stack.nginx}/go/time").status == 200,
        timeout_s=60,
        interval_s=0.5,
        what="/go/time answering again",
    )
    assert stack.container("nginx")["State"]["StartedAt"] == nginx_started


def test_redis_stopped_serves_uncached_counts_errors_then_recovers(stack: Stack) -> None:
    def errors() -> float:
        return metric_samples(f"{stack.redis_variant}/metrics").get("redis_errors_total", 0.0)

    http_request(f"{stack.redis_variant}/time")
    assert http_request(f"{stack.redis_variant}/time").headers.get("X-Cache") == "HIT"
    errors_before = errors()
    stack.compose("stop", "redis")
    try:
        for _ in range(3):
            uncached = http_request(f"{stack.redis_variant}/time")
            assert uncached.status == 200
            assert uncached.headers.get("X-Cache") == "MISS"
        assert errors() - errors_before >= 3
    finally:
        stack.compose("start", "redis")
    wait_until(
        lambda: http_request(f"{stack.redis_variant}/time").headers.get("X-Cache") == "HIT",
        timeout_s=60,
        interval_s=0.5,
        what="a Redis HIT again",
    )


def test_200_connections_over_mixed_endpoints(stack: Stack) -> None:
    # 20 s, not the 60 s it once was: what a long run found is shown by counting instead. Nginx
    # opening a connection per upstream request ran the ephemeral ports out after tens of
    # thousands of requests (each closed connection is held 60 s in TIME_WAIT; deploy/README.md,
    # "Why keep-alive matters"): here the sockets in TIME_WAIT on the upstream ports, in Nginx's
    # and the apps' namespaces, must stay under a tenth of the requests, where one per request is
    # what that fault leaves (a loaded machine's timeouts close some: 1.7 % seen at load 40).
    # Memory is sampled throughout and must stay under each limit.
    #
    # Every request gets an answer. A 5xx may only be Nginx's own answer for an app that did not
    # answer within its timeouts (502 from the fallback, or 504): 200 connections on a machine
    # loaded by other tests can starve gunicorn past the 3 s read timeout, which is the product
    # working as designed, not a fault. Any other upstream error in Nginx's log (refused, reset,
    # cut short) fails the test, as does an app's own 5xx.
    services = ("go-service", "py-service", "nginx", "prometheus", "alertmanager")
    containers = {s: stack.container(s) for s in services}
    limits = {s: c["HostConfig"]["Memory"] for s, c in containers.items()}
    restarts = {s: c["RestartCount"] for s, c in containers.items()}
    peaks: dict[str, int] = {}
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(2):  # ends with the load, which is bounded
            for name, used in memory_usage(stack).items():
                peaks[name] = max(peaks.get(name, 0), used)

    sampler = threading.Thread(target=sample_memory)
    since = str(int(time.time()))
    sampler.start()
    try:
        report = loadgen(*(stack.nginx + path for path in MIXED), connections=200, seconds=20)
        time_waits = {
            s: upstream_time_waits(stack.container(s)["State"]["Pid"])
            for s in ("nginx", "go-service", "py-service")
        }
    finally:
        done.set()
        sampler.join()
    print(json.dumps(report), "TIME_WAIT:", time_waits, file=sys.stderr)

    assert report["requests"] > 1000
    assert report["errors"] == {}, report
    assert report["not_connected"] == 0, report
    gateway = {code: n for code, n in report["status"].items() if not code.startswith(("2", "3"))}
    assert set(gateway) <= {"502", "504"}, report
    assert report["failed"] == sum(gateway.values()), report
    problems = nginx_errors(stack, since)
    print(
        "gateway answers:", gateway, "Nginx errors:", len(problems), problems[:3], file=sys.stderr
    )
    assert [line for line in problems if "timed out" not in line] == [], problems
    if gateway:  # each traced to a timeout
        assert problems, report
    assert sum(time_waits.values()) < report["requests"] / 10, time_waits
    for service in services:
        state = stack.container(service)
        name = state["Name"].lstrip("/")
        assert name in peaks, f"{service}: no memory sample"
        assert peaks[name] < limits[service], f"{service} peaked at {peaks[name]}"
        assert not state["State"]["OOMKilled"], service
        assert state["RestartCount"] == restarts[service], service


def test_sigterm_under_load_loses_no_request(stack: Stack) -> None:
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
    for service, base in (("go-service", stack.go_direct), ("py-service", stack.py_direct)):
        for round_number in range(rounds):
            where = f"{service}, round {round_number}"
            report = load_through_a_stop(
                stack, service, f"{base}/time", (f"{base}/metrics", "http_requests_total")
            )
            assert report["failed"] == 0, (where, report)
            assert report["status"].get("200", 0) > 100, (where, report)
            assert stack.container(service)["State"]["ExitCode"] == 0, where
            wait_healthy(stack, service)


def test_sigterm_of_python_behind_nginx_is_not_seen_by_clients(stack: Stack) -> None:
    # As deployed: Nginx in front, serving its copy while the app goes away and comes back.
    report = load_through_a_stop(
        stack, "py-service", f"{stack.nginx}/python/time", nginx_counter(stack), restart=True
    )
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report


def test_sigterm_of_go_behind_nginx_cuts_no_request(stack: Stack) -> None:
    # The Go tier has no copy in Nginx: while its only replica is away, requests get a short
    # answer (an outage, not a loss): 502 once Docker's DNS has no address for it, 504 when
    # Nginx's cached answer (at most 1 s) still names the gone replica and the connect times
    # out. None is reset or cut short, and every request sent before the stop is answered 200.
    # (With more replicas the others answer: //deploy:scale_test.)
    report = load_through_a_stop(
        stack, "go-service", f"{stack.nginx}/go/time", nginx_counter(stack), restart=True
    )
    assert set(report["status"]) <= {"200", "502", "504"}, report
    assert report["status"].get("200", 0) > 100, report
    outage = report["status"].get("502", 0) + report["status"].get("504", 0)
    assert report["failed"] - outage == 0, report
    assert report["not_connected"] == 0, report


def test_a_hung_app_holds_no_client_longer_than_the_read_timeout(stack: Stack) -> None:
    # A stale copy in the cache and the app hung (paused: its kernel still accepts
    # connections, nothing answers). Nginx serves the stale copy at once and refreshes it in
    # the background, on the client's connection: the next request on that connection waits
    # for the refresh, which proxy_read_timeout (3 s, nginx.conf) ends. Without that bound the
    # wait is Nginx's default (60 s), which this client's own timeout (60 s) would not see end.
    wait_until(
        lambda: http_request(f"{stack.nginx}/python/time").headers.get("X-Cache-Status") == "HIT",
        timeout_s=30,
        interval_s=0.5,
        what="a cached /python/time",
    )
    time.sleep(SETTINGS.py_cache_ttl + 1)  # stale now
    stack.compose("pause", "py-service")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", stack.ports.nginx, timeout=60)
        answered = []
        started = time.monotonic()
        for _ in range(3):
            connection.request("GET", "/python/time")
            response = connection.getresponse()
            response.read()
            answered.append(time.monotonic() - started)
            assert response.status == 200
            assert response.getheader("X-Cache-Status") in ("STALE", "UPDATING")
        connection.close()
    finally:
        stack.compose("unpause", "py-service")
    waits = [round(b - a, 2) for a, b in zip([0.0, *answered], answered, strict=False)]
    print("waits:", waits, file=sys.stderr)
    # The refresh started with the first request and the second waited for it: the app was
    # hung, and the second answer could not come before the read timeout ended the refresh
    # (less 50 ms for Nginx's millisecond timer and clock).
    assert answered[1] > NGINX_READ_TIMEOUT - 0.05, waits
    # ...and it did end it: no wait near the 60 s the client would otherwise have sat through.
    assert max(waits) < 10 * NGINX_READ_TIMEOUT, waits


def test_nginx_starts_and_serves_whatever_else_is_down(stack: Stack) -> None:
    # Each app stopped in turn, then Nginx restarted: it starts, the other route answers, the
    # stopped app's route gets its short 502 (at once for Go, within the connect timeout for
    # Python, whose address Nginx still tries) and comes back when the app does, with no
    # second restart.
    routes = {"go-service": "/go/time", "py-service": "/python/"}
    nginx = stack.container("nginx")["Id"]
    for down, route in routes.items():
        stack.compose("stop", down)
        try:
            docker("restart", nginx)
            wait_until(
                lambda: http_request(f"{stack.nginx}/healthz").status == 200,
                timeout_s=30,
                interval_s=0.5,
                what="nginx answering",
            )
            for service, path in routes.items():
                if service != down:
                    # The Go replicas' name is resolved by Nginx's resolver once its
                    # workers run (go-tier.conf: `resolve`), milliseconds after /healthz
                    # first answers; until then /go/ gets the fallback's 502.
                    wait_until(
                        lambda p=path: http_request(stack.nginx + p).status == 200,
                        timeout_s=30,
                        interval_s=0.5,
                        what=f"{path} answering",
                    )
            started = time.monotonic()
            answer = http_request(stack.nginx + route, timeout_s=60)
            took = time.monotonic() - started
            assert answer.status == 502, (down, answer)
            assert "service is not answering" in answer.text
            # Nginx's answer, not the client giving up: well under ten connect timeouts.
            assert took < 10 * NGINX_CONNECT_TIMEOUT, (down, took)
        finally:
            stack.compose("start", down)
        restarted = stack.container("nginx")["State"]["StartedAt"]
        wait_until(
            lambda r=route: http_request(stack.nginx + r).status == 200,
            timeout_s=60,
            interval_s=0.5,
            what=f"{route} back",
        )
        assert stack.container("nginx")["State"]["StartedAt"] == restarted
        wait_healthy(stack, down)


def test_stopping_nginx_finishes_requests_in_flight(stack: Stack) -> None:
    # The app slow (paused), a request through Nginx in flight, Nginx stopped while it is: Nginx
    # stops gracefully (SIGQUIT, compose.yaml's stop_signal, which `docker stop` sends) and the
    # request is answered once the app is back. With SIGTERM (fast shutdown) curl got an empty
    # reply. The route is /python/ (the product's image has no benchmark routes): when the stop
    # takes longer than its 3 s read timeout on a loaded machine, Nginx's 504 is an answer too,
    # and what is under test is that the request gets one, not a cut connection.
    answers: list[object] = []
    nginx, app = stack.container("nginx"), stack.container("py-service")
    assert nginx["Config"]["StopSignal"] == "SIGQUIT"

    def fetch() -> None:
        try:
            answers.append(http_request(f"{stack.nginx}/python/", timeout_s=30))
        except OSError as error:  # an empty reply, a reset: a request cut off
            answers.append(error)

    docker("pause", app["Id"])
    client = threading.Thread(target=fetch)
    stopper = threading.Thread(target=docker, args=("stop", "--time", "30", nginx["Id"]))
    try:
        client.start()
        # In flight: the request's bytes wait, unread, in the paused app's socket.
        wait_until(
            lambda: unread_from(app["State"]["Pid"], 8000, nginx_address(stack)),
            timeout_s=30,
            interval_s=0.1,
            what="the request to reach the paused app",
        )
        stopper.start()
        # Stopping: Nginx closes its listening socket as it starts its graceful stop.
        wait_until(
            lambda: not listening(nginx["State"]["Pid"], 8080),
            timeout_s=30,
            interval_s=0.1,
            what="nginx to get its stop signal",
        )
    finally:
        docker("unpause", app["Id"])
        client.join(timeout=40)
        if stopper.ident:  # started
            stopper.join(timeout=40)
        stopped = stack.container("nginx")
        # Not `compose start`: it would first wait for the apps' health, which the pause
        # may have cost a check.
        docker("start", nginx["Id"])
    assert not stopper.is_alive(), "docker stop nginx did not return"
    assert not stopped["State"]["Running"], "nginx was still running"
    assert stopped["State"]["ExitCode"] == 0
    (answer,) = answers
    assert isinstance(answer, Response), answer
    assert answer.status in (200, 504), answer


def test_random_paths_grow_no_series_and_no_cache(stack: Stack) -> None:
    rng = random.Random(20261129)
    metrics = {"go": f"{stack.nginx}/go/metrics", "python": f"{stack.nginx}/python/metrics"}

    def scan(count: int) -> dict[str, Any]:
        """GETs count random paths under each service, each once (the load generator takes its
        targets in turn), on 8 connections; its report, answers tallied by X-Cache-Status."""
        paths = [f"/{service}/{random_path(rng)}" for service in metrics for _ in range(count)]
        report = loadgen(
            *(stack.nginx + path for path in paths),
            connections=8,
            seconds=300,
            max_requests=len(paths),
            tally_header="X-Cache-Status",
        )
        assert report["requests"] >= len(paths), report["requests"]
        assert report["errors"] == {}, report["errors"]
        return report

    scan(20)  # the first 404s create their series; from here on nothing may
    before = {service: set(metric_samples(url)) for service, url in metrics.items()}
    go_entries = metric_samples(metrics["go"])["cache_entries"]

    report = scan(5000)
    answers = report["answers"]
    assert sum(answer["count"] for answer in answers) == report["requests"]
    assert {answer["code"] for answer in answers if not 400 <= answer["code"] < 500} == set()
    for service, url in metrics.items():
        assert set(metric_samples(url)) - before[service] == set(), service
    assert metric_samples(metrics["go"])["cache_entries"] <= go_entries
    # Nginx stored none of them: each skipped the cache (BYPASS), and asked again is still a
    # 404 that skipped it.
    python = [a for a in answers if a["target"].startswith(f"{stack.nginx}/python/")]
    by_header = Counter({a["header"]: 0 for a in python})
    for answer in python:
        by_header[answer["header"]] += answer["count"]
    assert by_header == Counter({"BYPASS": by_header.total()}), by_header
    assert by_header.total() >= 5000, by_header
    for answer in python[:50]:
        again = http_request(answer["target"])
        assert (again.status, again.headers.get("X-Cache-Status")) == (404, "BYPASS")


def nginx_counter(stack: Stack) -> tuple[str, str]:
    """Nginx's request counter: its metrics endpoint on the stack's network, the counter."""
    url = stack.nginx_direct().replace(":8080", ":9145") + "/metrics"
    return url, "nginx_http_requests_total"


def nginx_address(stack: Stack) -> str:
    return stack.nginx_direct().removeprefix("http://").partition(":")[0]


def sockets(pid: int) -> Iterator[tuple[str, int, str, int, str, int]]:
    """The IPv4 TCP sockets of process pid's network namespace (/proc/net/tcp, proc(5)): local
    address and port, remote address and port, state (hex, include/net/tcp_states.h), bytes
    received and not yet read."""
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            local, remote, state, queues = line.split()[1:5]
            (local_ip, local_port), (remote_ip, remote_port) = (
                address(local),
                address(remote),
            )
            yield local_ip, local_port, remote_ip, remote_port, state, int(queues[9:], 16)


def address(hex_address: str) -> tuple[str, int]:
    """ "0100007F:1F90" (as /proc/net/tcp writes it, little-endian) as ("127.0.0.1", 8080)."""
    ip, _, port = hex_address.partition(":")
    return ".".join(str(int(ip[i : i + 2], 16)) for i in (6, 4, 2, 0)), int(port, 16)


def unread_from(pid: int, port: int, peer: str) -> bool:
    """Whether a connection from peer to port holds bytes the process has not read."""
    return any(
        lp == port and rip == peer and state == "01" and unread > 0
        for _, lp, rip, _, state, unread in sockets(pid)
    )


def listening(pid: int, port: int) -> bool:
    return any(lp == port and state == "0A" for _, lp, _, _, state, _ in sockets(pid))


def load_through_a_stop(
    stack: Stack, service: str, url: str, counter: tuple[str, str], restart: bool = False
) -> dict[str, Any]:
    """A 50-connection load on url while `compose stop` sends SIGTERM to service, once the load
    flows (counter, a (metrics URL, counter name), has counted 100 more requests); the load ends
    once the container exited, or, with restart, once it is healthy again. The service is
    started again either way. Returns the load generator's report."""

    def answered() -> float:
        return requests_counted(*counter)

    before = answered()
    load = subprocess.Popen(
        [LOADGEN, "-connections=50", "-duration=90s", "-timeout=10s", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: answered() - before >= 100,
            timeout_s=60,
            interval_s=0.2,
            what=f"the load on {url} to flow",
        )
        stack.compose("stop", service)  # SIGTERM; returns once the container exited
        if restart:
            stack.compose("start", service)
            wait_healthy(stack, service)
    finally:
        load.send_signal(signal.SIGINT)
        report = json.loads(load.communicate(timeout=30)[0])
        if not restart:
            if report["failed"]:  # what the app said as it stopped: the evidence for a failure
                print(stack.compose("logs", "--tail=80", service), file=sys.stderr)
            stack.compose("start", service)
    print(service, url, json.dumps(report), file=sys.stderr)
    return report
