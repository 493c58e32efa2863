"""End-to-end test of the stack: real Docker engine, real images, through Nginx on loopback.

Brings a stack of its own up (deploy/stack_harness.py) with the same script as `bazel run
//deploy:up`, checks both cache layers, Prometheus targets and counters, that Nginx's metrics count
a burst exactly, every Grafana dashboard query against the live Prometheus, and that a service
going down pages a webhook (and its recovery too); tears the stack down at the end. Failures (apps
and Redis stopped, load, SIGTERM, random paths) are deploy/fault_test.py's.

The outage that pages the webhook comes first: its recovery is delivered a group_interval after
the service is back, while the other tests run, and the last test only collects it.
"""

import http.client
import json
import re
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from ipaddress import ip_address, ip_network

import pytest

from api.metrics_vocabulary import load, openapi_routes, problems
from deploy.stack_harness import (
    RUNFILES,
    WORKSPACE,
    Stack,
    StackSettings,
    loadgen,
    memory_usage,
    running,
    seconds,
)
from tools.testing.python.support import http_request, wait_until

# The webhook receiver this test runs on the stack's network, at a fixed host number below the
# subnet's ip_range (compose.yaml), so Alertmanager's URL is known before the stack is up.
WEBHOOK_HOST = 20
SETTINGS = StackSettings(name="e2e", alert_webhook_host=WEBHOOK_HOST)
GO_TTL = seconds(SETTINGS.go_cache_ttl)  # deploy/stack.env's STACK_GO_CACHE_TTL
# An alert's delivery, from the configs: ServiceDown's `for` (30 s) + a scrape and a rule
# evaluation (5 s each) + Alertmanager's group_wait (5 s) = 45 s to fire; a scrape, an evaluation
# and group_interval (30 s) = 40 s to resolve. Waited for up to four times that: these are
# Prometheus' and Alertmanager's timers, which a loaded machine delays by seconds, not minutes.
FIRING_WITHIN = 4 * 45
RESOLVED_WITHIN = 4 * 40

# Records each webhook notification (Alertmanager's JSON) and serves the list back on GET /.
RECEIVER = """
import http.server, json
received = []
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200); self.end_headers()
    def do_GET(self):
        body = json.dumps(received).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 9000), Receiver).serve_forever()
"""


@pytest.fixture(scope="module", autouse=True)
def stack() -> Iterator[Stack]:
    """The stack, and the webhook receiver on its network (the harness removes it before the
    stack goes down)."""
    with running(SETTINGS) as stack:
        stack.start_container(
            "webhook",
            # The py-service image: a Python on the stack's network, as the image's non-root
            # user, read-only.
            "--ip",
            stack.address(WEBHOOK_HOST),
            "--read-only",
            "--cap-drop",
            "ALL",
            "--entrypoint",
            "/usr/bin/python3.13",
            "cache-platform/py-service:dev",
            "-c",
            RECEIVER,
        )
        wait_until(
            lambda: http_request(webhook(stack)).status == 200,
            timeout_s=30,
            interval_s=0.5,
            what="the webhook receiver",
        )
        yield stack


@pytest.fixture(scope="module")
def go_service_outage(stack: Stack) -> float:
    """The Go service stopped until ServiceDown (firing) reaches the webhook, then started and
    answering again. Returns when it started (time.monotonic)."""
    stack.compose("stop", "go-service")
    stopped = time.monotonic()
    try:
        wait_paged(stack, "firing", FIRING_WITHIN)
        print(f"ServiceDown delivered {time.monotonic() - stopped:.0f} s after the stop")
    finally:
        stack.compose("start", "go-service")
    started = time.monotonic()
    wait_until(
        lambda: http_request(f"{stack.nginx}/go/time").status == 200,
        timeout_s=60,
        interval_s=0.5,
        what="/go/time answering again",
    )
    return started


def test_0_a_service_down_pages_the_webhook(stack: Stack, go_service_outage: float) -> None:
    # The fixture stopped the Go service until the page came. With no replica left the name has
    # no address and Prometheus no target: the alert is the absent() one, for any replica.
    (alert,) = {
        json.dumps(alert["labels"], sort_keys=True): alert
        for notification in json.loads(http_request(webhook(stack)).text)
        for alert in notification["alerts"]
        if alert["status"] == "firing" and alert["labels"].get("job") == "go-service"
    }.values()
    assert alert["labels"]["severity"] == "critical", alert
    assert alert["labels"]["instance"] == "any replica", alert
    assert alert["annotations"]["summary"] == "go-service is down", alert


def test_1_go_time_is_cached_in_process_for_ttl(stack: Stack) -> None:
    # One value, a HIT, for as long as its Age (the replica's clock, not this test's) is under
    # the TTL; then a new one, made no earlier than the old one expired. /go/time's body is the
    # time its value was made (RFC 3339).
    first = http_request(f"{stack.nginx}/go/time")
    assert first.status == 200
    ages = [int(first.headers["Age"])]

    def renewed() -> str:
        answer = http_request(f"{stack.nginx}/go/time")
        assert answer.status == 200
        if answer.text == first.text:
            assert answer.headers.get("X-Cache") == "HIT"
            ages.append(int(answer.headers["Age"]))
            return ""
        return answer.text

    new = wait_until(renewed, timeout_s=10 * GO_TTL, interval_s=0.5, what="a new /go/time")
    assert max(ages) < GO_TTL, ages
    made = [datetime.fromisoformat(body.strip()) for body in (first.text, new)]
    assert (made[1] - made[0]).total_seconds() >= GO_TTL, (first.text, new)


def test_2_python_time_is_cached_by_nginx_for_ttl(stack: Stack) -> None:
    first = http_request(f"{stack.nginx}/python/time")
    assert first.status == 200
    assert first.headers.get("X-Cache-Status") in ("MISS", "EXPIRED")
    # Nginx keeps it for as long as the app says (CACHE_TTL: deploy/stack.env's STACK_PY_CACHE_TTL).
    assert first.headers.get("Cache-Control") == f"public, max-age={SETTINGS.py_cache_ttl}"
    hit = http_request(f"{stack.nginx}/python/time")
    assert hit.headers.get("X-Cache-Status") == "HIT"
    assert hit.text == first.text


def test_3_prometheus_targets_up_and_counters_moved(stack: Stack) -> None:
    wait_until(
        lambda: all(t["health"] == "up" for t in targets(stack)) and len(targets(stack)) >= 4,
        timeout_s=60,
        interval_s=0.5,
        what="every Prometheus target up",
    )
    for query in (
        'sum(http_requests_total{job="go-service"})',
        'sum(http_requests_total{job="py-service"})',
        'sum(cache_requests_total{job="go-service"})',
    ):
        wait_until(
            lambda q=query: value(stack, q) > 0, timeout_s=30, interval_s=0.5, what=f"{query} > 0"
        )


def test_4_every_dashboard_query_returns_data(stack: Stack) -> None:
    # Rates need two scrapes of traffic: send some, then give Prometheus a few intervals.
    for _ in range(50):
        for path in ("/go/time", "/go/static-text", "/python/time", "/python/static-text"):
            http_request(stack.nginx + path)
    checker = RUNFILES / "deploy/grafana/check_dashboards.py"
    dashboards = WORKSPACE / "deploy/grafana/dashboards"

    def all_queries_answer() -> bool:
        result = subprocess.run(
            [sys.executable, str(checker), "--prometheus", stack.prometheus, str(dashboards)],
            capture_output=True,
            text=True,
        )
        last_check[:] = [result.stdout + result.stderr]
        return result.returncode == 0

    last_check: list[str] = []
    try:
        wait_until(
            all_queries_answer,
            timeout_s=90,
            interval_s=0.5,
            what="every dashboard query to return data",
        )
    except TimeoutError:
        pytest.fail(last_check[0])


def test_5_reserved_addresses_lie_outside_the_dynamic_pool(stack: Stack) -> None:
    # The Python app's fixed address is below ip_range, the pool Docker hands out to
    # every other container (the Go replicas included): none can take the reserved one,
    # after a daemon restart or not.
    network = json.loads(
        subprocess.run(
            ["docker", "network", "inspect", stack.network],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )[0]
    (config,) = network["IPAM"]["Config"]
    subnet, pool = ip_network(config["Subnet"]), ip_network(config.get("IPRange", "0.0.0.0/0"))
    assert pool.subnet_of(subnet), config
    for service in ("go-service", "py-service", "nginx", "prometheus", "alertmanager"):
        (settings,) = stack.container(service)["NetworkSettings"]["Networks"].values()
        address = ip_address(settings["IPAddress"])
        assert address in subnet, service
        reserved = service == "py-service"
        assert (address in pool) == (not reserved), f"{service}: {address} and {pool}"


def test_6_nginx_counts_every_request_exactly(stack: Stack) -> None:
    # A burst straight to Nginx's container address (the stack's own path, no userland
    # proxy), over every kind of route: Nginx's own answer (404), the Go service, the
    # Python service's cache HITs and its uncached routes. Two generators at once, so that the
    # uncached routes, which gunicorn answers at a fraction of the others' rate, do not set
    # the pace of the rest. Prometheus' counters must grow by exactly what was answered, per
    # service and cache status: nothing is lost, nothing counted twice. 5 s (it was 15): the
    # count must be exact however long the burst, and 5 s is already thousands of requests on
    # every route, from 58 connections at once.
    nginx = stack.nginx_direct()
    fast = ["/go/time", "/python/time", "/python/static-text", "/nope"]
    slow = ["/python/", "/go/static-text"]
    before = nginx_counts_after(stack, time.time())
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(
                loadgen,
                *(nginx + p for p in paths),
                connections=n,
                seconds=5,
                max_requests=limit,
                tally_header="X-Cache-Status",
            )
            for paths, n, limit in ((fast, 50, 150_000), (slow, 8, 10_000))
        ]
        reports = [run.result() for run in runs]
    after = nginx_counts_after(stack, time.time())

    sent: Counter[tuple[str, str]] = Counter()
    for report in reports:
        assert report["errors"] == {}, report
        for answer in report["answers"]:
            path = answer["target"].removeprefix(nginx)
            service = {"/go/": "go", "/python/": "python"}.get(
                path[: path.find("/", 1) + 1], "nginx"
            )
            sent[(service, answer["header"] or "-")] += answer["count"]
    counted = Counter({key: after[key] - before.get(key, 0) for key in after})
    print(f"burst: {[round(r['rps']) for r in reports]} req/s; answered {dict(sent)}")
    assert +counted == +sent


def test_7_every_exposer_speaks_the_metrics_vocabulary(stack: Stack) -> None:
    # api/metrics.json against the running images, each scraped where Prometheus scrapes it.
    spec = load(RUNFILES / "api/metrics.json")
    routes = openapi_routes(RUNFILES / "api/openapi.json")
    nginx_metrics = stack.nginx_direct().replace(":8080", ":9145") + "/metrics"
    for exposer, url in (
        ("go", stack.go_direct + "/metrics"),
        ("python", stack.py_direct + "/metrics"),
        ("nginx", nginx_metrics),
    ):
        response = http_request(url)
        assert response.status == 200, exposer
        assert problems(spec, response.text, exposer, routes) == [], exposer


def redis_exchange(stack: Stack, *commands: tuple[str, ...]) -> list[bytes]:
    """Commands to Redis' port on the stack's network, one connection: each reply's first line
    (a bulk string's payload is read past)."""
    (settings,) = stack.container("redis")["NetworkSettings"]["Networks"].values()
    with socket.create_connection((settings["IPAddress"], 6379), timeout=10) as connection:
        replies = connection.makefile("rb")
        answers = []
        for command in commands:
            connection.sendall(
                b"*%d\r\n" % len(command)
                + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in command)
            )
            answer = replies.readline().rstrip(b"\r\n")
            if answer.startswith(b"$") and int(answer[1:]) >= 0:
                replies.read(int(answer[1:]) + 2)
            answers.append(answer)
        return answers


def test_8_redis_refuses_a_client_without_credentials(stack: Stack) -> None:
    # Any container on the stack's network can reach Redis' port; without an ACL user's password
    # it can run nothing (deploy/redis/users_acl.sh).
    anonymous = redis_exchange(stack, ("PING",), ("GET", "go_service:v1:time"), ("KEYS", "*"))
    assert all(reply.startswith(b"-NOAUTH") for reply in anonymous), anonymous
    wrong = redis_exchange(stack, ("AUTH", "go-service", "not-the-password"), ("PING",))
    assert [reply.split()[0] for reply in wrong] == [b"-WRONGPASS", b"-NOAUTH"], wrong
    # The Go service's user reaches its own keys only, and no administrative command.
    go = redis_exchange(
        stack,
        ("AUTH", "go-service", stack.redis_go_service_password),
        ("GETRANGE", "go_service:v1:time", "0", "-1"),
        ("GETRANGE", "py_service:v1:time", "0", "-1"),
        ("FLUSHALL",),
    )
    assert [reply[:1] for reply in go[:2]] == [b"+", b"$"], go
    assert [reply.split()[0] for reply in go[2:]] == [b"-NOPERM", b"-NOPERM"], go


def test_8_secrets_are_private_files_never_in_a_container_config(stack: Stack) -> None:
    secrets_dir = stack.secrets_dir
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    users = {  # file -> the uid of the container that reads it (the images' NONROOT_UID; Grafana's)
        "go-service-redis-password": 65532,
        "py-service-redis-password": 65532,
        "redis-users.acl": 65532,
        "alert-webhook-url": 65532,
        "grafana-admin-password": 472,
    }
    for name, uid in users.items():
        info = (secrets_dir / name).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, uid), name
    assert (secrets_dir / "alert-webhook-url").read_text().strip() == stack.alert_webhook_url
    # What `docker inspect` shows (environment, command, health check) holds no secret.
    for service in ("go-service", "redis", "alertmanager", "py-service"):
        config = json.dumps(stack.container(service)["Config"])
        for secret in (stack.redis_go_service_password, stack.alert_webhook_url):
            assert secret not in config, service
    grafana = json.loads(stack.compose("config", "--format", "json", "grafana"))
    environment = grafana["services"]["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment
    password_file = environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert password_file == "/run/secrets/grafana-admin-password"  # noqa: S105 (a path)


def test_8_only_the_products_routes_are_public(stack: Stack) -> None:
    # The benchmark's routes are its own image's (tools/dev/bench); Nginx's status is on its
    # metrics port, which is not published.
    for path in ("/bench/ceiling", "/bench/python-uncached/time", "/bench/flask-run/time"):
        assert http_request(stack.nginx + path).status == 404, path
    assert http_request(stack.nginx + "/nginx_status").status == 404
    internal = stack.nginx_direct().replace(":8080", ":9145")
    assert http_request(internal + "/nginx_status").text.startswith("Active connections:")


def test_8_made_up_accept_values_cost_one_fill_per_representation(stack: Stack) -> None:
    # Issue 29's measurement: distinct Accept values to /python/time through the published
    # port, as one client sends them in seconds. The app fills each representation at most
    # once per TTL (SETTINGS.py_cache_ttl; the run may straddle one expiry), by its own counter,
    # and Nginx's memory, its cache's tmpfs included, stays where it was (measured before Nginx
    # reduced Accept: 1,500 fills per representation, 9.6 -> 27.0 MiB; after: at most 1,
    # 9.6 -> 9.5).
    def fills() -> float:
        metrics = http_request(stack.py_direct + "/metrics").text
        pattern = r'http_requests_total\{[^}]*handler="/time"[^}]*\} (\S+)'
        return sum(float(value) for value in re.findall(pattern, metrics))

    container = stack.container("nginx")["Name"].lstrip("/")
    memory_before = memory_usage(stack)[container]
    filled = {}
    connection = http.client.HTTPConnection("127.0.0.1", stack.ports.nginx, timeout=10)
    try:
        for representation in ("text/plain", "application/json"):
            before = fills()
            for i in range(1500):
                accept = f"{representation}, x-made-up/{i};q=0.{i % 1000:03d}"
                connection.request("GET", "/python/time", headers={"Accept": accept})
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                assert response.getheader("Content-Type", "").startswith(representation)
            filled[representation] = fills() - before
    finally:
        connection.close()
    memory_after = memory_usage(stack)[container]
    print(
        f"3,000 distinct Accept values: app fills {filled}; Nginx's memory "
        f"{memory_before / 2**20:.1f} -> {memory_after / 2**20:.1f} MiB"
    )
    assert all(n <= 2 for n in filled.values()), filled
    assert memory_after - memory_before < 4 * 2**20


def test_9_the_recovery_pages_the_webhook_too(stack: Stack, go_service_outage: float) -> None:
    # Delivered while the tests before this one ran (the outage was test_0's).
    wait_paged(stack, "resolved", RESOLVED_WITHIN)
    print(f"resolved at the webhook {time.monotonic() - go_service_outage:.0f} s after the start")


def webhook(stack: Stack) -> str:
    return f"http://{stack.address(WEBHOOK_HOST)}:9000/"


def wait_paged(stack: Stack, status: str, within: float) -> None:
    wait_until(
        lambda: paged(stack, status),
        timeout_s=within,
        interval_s=0.5,
        what=f"ServiceDown ({status}) at the webhook",
    )


def paged(stack: Stack, status: str) -> bool:
    """Whether the webhook got a ServiceDown notification for the Go service with status."""
    notifications = json.loads(http_request(webhook(stack)).text)
    return any(
        alert["status"] == status
        and alert["labels"].get("alertname") == "ServiceDown"
        and alert["labels"].get("job") == "go-service"
        for notification in notifications
        for alert in notification["alerts"]
    )


def nginx_counts_after(stack: Stack, moment: float) -> dict[tuple[str, str], float]:
    """Prometheus' nginx_http_requests_total by (service, cache_status), from a scrape taken
    after `moment` (Unix seconds): the raw counters, not increase(), which extrapolates."""
    query = "sum by (service, cache_status) (nginx_http_requests_total)"
    newest = "max(timestamp(nginx_http_requests_total))"
    wait_until(
        lambda: value(stack, newest) > moment + 0.5,
        timeout_s=30,
        interval_s=0.5,
        what="a scrape of Nginx after the moment",
    )
    return {
        (r["metric"]["service"], r["metric"]["cache_status"]): float(r["value"][1])
        for r in stack.prometheus_query(query)
    }


def targets(stack: Stack) -> list[dict]:
    return json.loads(http_request(f"{stack.prometheus}/api/v1/targets").text)["data"][
        "activeTargets"
    ]


def value(stack: Stack, expr: str) -> float:
    result = stack.prometheus_query(expr)
    return float(result[0]["value"][1]) if result else 0.0
