"""The Go tier scaled out, in a real Docker engine: STACK_GO_REPLICAS=3 replicas sharing Redis
behind Nginx (deploy/README.md, "Scaling the Go tier"). Every replica answers /go/time alike
within the TTL; the fleet fills a key once per TTL under load; a replica killed, the tier scaled
3 -> 5 -> 2, and Redis stopped, all under load through Nginx, fail no request; Redis filled past
its maxmemory keeps the fleet sharing. Its own stack: scaling changes the shape the other stack
tests assume.
"""

import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.stack_harness import LOADGEN, Stack, metric_samples, running
from tools.testing.python.support import free_port, http_request, wait_until

TTL = 3  # s: STACK_GO_CACHE_TTL, short so that a test sees several TTLs
REPLICAS = 3
STACK = Stack(
    project="cache-platform-scale",
    nginx_port=free_port(),
    prometheus_port=free_port(),
    redis_variant_port=free_port(),
    grafana_port=free_port(),
    alertmanager_port=free_port(),
    net=50,
    go_replicas=REPLICAS,
    go_cache_ttl=f"{TTL}s",
    # Room for Redis on a machine busy with other tests: a lookup that times out is (rightly)
    # filled locally and would blur the fleet's fill count this test checks. The 50 ms default's
    # behaviour is the unit tests' (go_service/internal/sharedcache).
    go_redis_timeout="1s",
)
GO_TIME = f"{STACK.nginx}/go/time"


def fleet_sum(series: str) -> float:
    """series summed over every running replica, each scraped directly."""
    return sum(
        metric_samples(f"{url}/metrics").get(series, 0.0) for url in STACK.go_replicas_direct()
    )


def start_load(url: str, connections: int) -> subprocess.Popen:
    """The load generator on url until stop_load (at most 120 s)."""
    return subprocess.Popen(
        [LOADGEN, f"-connections={connections}", "-duration=120s", "-timeout=10s", url],
        stdout=subprocess.PIPE,
        text=True,
    )


def stop_load(load: subprocess.Popen) -> dict[str, Any]:
    load.send_signal(signal.SIGINT)
    report = json.loads(load.communicate(timeout=30)[0])
    print(json.dumps(report), file=sys.stderr)
    if report["failed"]:  # what Nginx said about them: the evidence for a failure
        lines = STACK.compose("logs", "--tail=5000", "nginx").splitlines()
        print(*[line for line in lines if "[error]" in line][-20:], sep="\n", file=sys.stderr)
    return report


def scale(replicas: int) -> None:
    """`compose up --scale`, as an operator would, waiting for the replicas to be healthy."""
    STACK.compose(
        "up",
        "--detach",
        "--no-deps",
        "--no-recreate",
        "--wait",
        "--scale",
        f"go-service={replicas}",
        "go-service",
    )


def replica_times() -> set[str]:
    """The /time bodies the replicas answer, each asked directly."""
    return {http_request(f"{url}/time").text for url in STACK.go_replicas_direct()}


def shared_time() -> str:
    """The /time every replica answers; fails unless they all agree. Asked twice at most: the TTL
    may end between two replicas' answers."""
    for _ in range(2):
        bodies = replica_times()
        if len(bodies) == 1:
            return bodies.pop()
    raise AssertionError(f"replicas answer different times: {sorted(bodies)}")


def redis_command(address: str, user: str, password: str, *args: str) -> bytes:
    """One command to Redis' port on the stack's network, in RESP, as an ACL user; its raw reply
    (a bulk string read whole)."""
    with socket.create_connection((address, 6379), timeout=10) as s:
        s.sendall(resp("AUTH", user, password) + resp(*args))
        replies = b""
        while replies.count(b"\r\n") < 2:  # AUTH's +OK, then the reply's first line
            chunk = s.recv(65536)
            assert chunk, f"Redis closed the connection: {replies!r}"
            replies += chunk
        assert replies.startswith(b"+OK\r\n"), f"AUTH as {user}: {replies[:100]!r}"
        reply = replies[5:]
        if reply.startswith(b"$"):
            header, _, body = reply.partition(b"\r\n")
            while len(body) < int(header[1:]) + 2:
                chunk = s.recv(65536)
                assert chunk, "Redis closed the connection mid-reply"
                body += chunk
            return body[: int(header[1:])]
        return reply


def resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running(STACK):
        yield STACK


@pytest.fixture(autouse=True)
def three_replicas(stack: Stack) -> None:
    """Each test starts from three healthy replicas and a running Redis."""
    STACK.compose("start", "redis")
    scale(REPLICAS)
    assert len(STACK.go_replicas_direct()) == REPLICAS


def test_1_every_replica_answers_the_same_time_and_age() -> None:
    first = shared_time()
    time.sleep(1)
    assert shared_time() == first
    ages = {http_request(f"{url}/time").headers.get("Age") for url in STACK.go_replicas_direct()}
    assert len(ages) <= 2, ages  # one value, whole seconds: a tick may pass


def test_2_the_fleet_fills_each_key_once_per_ttl_under_load() -> None:
    fills, errors = 'cache_fills_total{key="time"}', "redis_errors_total"
    served = 'http_requests_total{code="200",handler="/time",method="GET"}'
    before = {url: metric_samples(f"{url}/metrics") for url in STACK.go_replicas_direct()}
    started = time.monotonic()
    report = stop_load_after(start_load(GO_TIME, 48), seconds=4 * TTL)
    elapsed = time.monotonic() - started
    after = {url: metric_samples(f"{url}/metrics") for url in STACK.go_replicas_direct()}
    assert set(report["status"]) == {"200"}, report
    delta = {
        url: {s: after[url].get(s, 0) - before[url].get(s, 0) for s in (fills, errors, served)}
        for url in after
    }
    print("per replica:", json.dumps(delta), file=sys.stderr)
    assert sum(d[errors] for d in delta.values()) == 0, delta
    # Every replica took its share of the load (Nginx balances across them)...
    for url, d in delta.items():
        assert d[served] > report["status"]["200"] / (4 * REPLICAS), (url, delta)
    # ...and the fleet filled /time once per TTL window the load spanned, not once per replica.
    windows = math.ceil(elapsed / TTL) + 1
    assert sum(d[fills] for d in delta.values()) <= windows, delta


def test_3_a_replica_killed_under_load_fails_no_request() -> None:
    load = start_load(GO_TIME, 48)
    time.sleep(2)
    victim = STACK.containers("go-service")[0]["Id"]
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    time.sleep(4)
    report = stop_load(load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report
    assert report["status"]["200"] > 100, report


def test_4_scaling_3_to_5_to_2_under_load_fails_no_request() -> None:
    load = start_load(GO_TIME, 48)
    try:
        time.sleep(2)
        scale(5)
        replicas = STACK.go_replicas_direct()
        assert len(replicas) == 5
        served = 'http_requests_total{code="200",handler="/time",method="GET"}'
        # Nginx finds the new replicas by itself (no reload): each serves within seconds.
        wait_until(
            lambda: all(metric_samples(f"{url}/metrics").get(served, 0) > 0 for url in replicas),
            timeout_s=15,
            interval_s=0.5,
            what="all 5 replicas to serve /time through Nginx",
        )
        scale(2)
        assert len(STACK.go_replicas_direct()) == 2
        time.sleep(3)
    finally:
        report = stop_load(load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report


def test_5_redis_stopped_under_load_gives_only_200s_then_sharing_resumes() -> None:
    errors_before = fleet_sum("redis_errors_total")
    load = start_load(GO_TIME, 24)
    try:
        time.sleep(2)
        STACK.compose("stop", "redis")
        time.sleep(2 * TTL)  # every replica's in-process copy expires and meets Redis down
        STACK.compose("start", "redis")
        time.sleep(2)
    finally:
        report = stop_load(load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report
    assert fleet_sum("redis_errors_total") > errors_before
    wait_until(
        lambda: len(replica_times()) == 1,
        timeout_s=30,
        interval_s=0.5,
        what="the replicas to share again",
    )


def test_6_redis_past_its_maxmemory_evicts_and_the_fleet_keeps_sharing() -> None:
    (settings,) = STACK.container("redis")["NetworkSettings"]["Networks"].values()
    address = settings["IPAddress"]
    value = "x" * 4096
    # 80 MB of values into a 64 MB maxmemory, pipelined, 1,000 at a time, under the keys the Go
    # service's ACL user may write (deploy/redis/users_acl.sh).
    auth = resp("AUTH", "go-service", STACK.redis_go_service_password)
    for batch in range(20):
        with socket.create_connection((address, 6379), timeout=30) as s:
            sets = (resp("SET", f"go_service:junk:{batch}:{i}", value) for i in range(1000))
            s.sendall(auth + b"".join(sets))
            replies = b""
            while replies.count(b"\r\n") < 1001:
                chunk = s.recv(65536)
                assert chunk, "Redis closed the connection"
                replies += chunk
            assert replies.startswith(b"+OK\r\n"), replies[:100]
            assert b"-" not in replies, replies[:100]
    monitor = ("monitor", STACK.redis_monitor_password)
    info = (
        redis_command(address, *monitor, "INFO", "memory").decode()
        + redis_command(address, *monitor, "INFO", "stats").decode()
    )
    fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
    print({k: fields[k] for k in ("used_memory", "maxmemory", "evicted_keys")}, file=sys.stderr)
    assert int(fields["evicted_keys"]) > 0
    assert int(fields["used_memory"]) <= int(fields["maxmemory"]) * 11 // 10
    assert http_request(GO_TIME).status == 200
    time.sleep(TTL)
    assert shared_time()


def stop_load_after(load: subprocess.Popen, seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return stop_load(load)
