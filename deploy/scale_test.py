"""The Go tier scaled out, in a real Docker engine: STACK_GO_REPLICAS=3 replicas sharing Redis
behind Nginx (deploy/README.md, "Scaling the Go tier"). Every replica answers /go/time alike
within the TTL; the fleet fills a key once per TTL under load; a replica killed, the tier scaled
3 -> 5 -> 2, and Redis stopped, all under load through Nginx, fail no request; Redis filled past
its maxmemory keeps the fleet sharing. Its own stack: scaling changes the shape the other stack
tests assume. Agreement is judged by the replicas' own Age and values, not by how fast this test
asks them.
"""

import itertools
import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from deploy.stack_harness import LOADGEN, Stack, StackSettings, metric_samples, running
from tools.testing.python.support import http_request, wait_until

TTL = 3  # s: STACK_GO_CACHE_TTL, short so that a test sees several TTLs
REPLICAS = 3
SETTINGS = StackSettings(
    name="scale",
    go_replicas=REPLICAS,
    go_cache_ttl=f"{TTL}s",
    # Room for Redis on a machine busy with other tests: a lookup that times out is (rightly)
    # filled locally and would blur the fleet's fill count this test checks. The 50 ms default's
    # behaviour is the unit tests' (go_service/internal/sharedcache).
    go_redis_timeout="1s",
)
SERVED = 'http_requests_total{code="200",handler="/time",method="GET"}'


def go_time(stack: Stack) -> str:
    return f"{stack.nginx}/go/time"


def per_replica(stack: Stack, series: str) -> dict[str, float]:
    """series on every running replica, each scraped directly."""
    return {
        url: metric_samples(f"{url}/metrics").get(series, 0.0) for url in stack.go_replicas_direct()
    }


def start_load(url: str, connections: int) -> subprocess.Popen:
    """The load generator on url until stop_load (at most 120 s)."""
    return subprocess.Popen(
        [LOADGEN, f"-connections={connections}", "-duration=120s", "-timeout=10s", url],
        stdout=subprocess.PIPE,
        text=True,
    )


def stop_load(stack: Stack, load: subprocess.Popen) -> dict[str, Any]:
    load.send_signal(signal.SIGINT)
    report = json.loads(load.communicate(timeout=30)[0])
    print(json.dumps(report), file=sys.stderr)
    if report["failed"]:  # what Nginx said about them: the evidence for a failure
        lines = stack.compose("logs", "--tail=5000", "nginx").splitlines()
        print(*[line for line in lines if "[error]" in line][-20:], sep="\n", file=sys.stderr)
    return report


def wait_for_answers(stack: Stack, count: int, what: str) -> None:
    """Waits until the replicas have answered /time `count` more times (the load flows)."""
    before = sum(per_replica(stack, SERVED).values())
    wait_until(
        lambda: sum(per_replica(stack, SERVED).values()) - before >= count,
        timeout_s=60,
        interval_s=0.2,
        what=what,
    )


def scale(stack: Stack, replicas: int) -> None:
    """`compose up --scale`, as an operator would, waiting for the replicas to be healthy."""
    stack.compose(
        "up",
        "--detach",
        "--no-deps",
        "--no-recreate",
        "--wait",
        "--scale",
        f"go-service={replicas}",
        "go-service",
    )


def replica_answers(stack: Stack) -> list[tuple[str, int]]:
    """The /time body and Age each replica answers, each asked directly."""
    answers = []
    for url in stack.go_replicas_direct():
        answer = http_request(f"{url}/time")
        answers.append((answer.text, int(answer.headers["Age"])))
    return answers


def replica_times(stack: Stack) -> set[str]:
    """The /time bodies the replicas answer, each asked directly."""
    return {body for body, _ in replica_answers(stack)}


def shared_time(stack: Stack) -> str:
    """The /time every replica answers; fails unless they all agree. Asked twice at most: the TTL
    may end between two replicas' answers."""
    for _ in range(2):
        bodies = replica_times(stack)
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
    with running(SETTINGS) as stack:
        yield stack


@pytest.fixture(autouse=True)
def three_replicas(stack: Stack) -> None:
    """Each test starts from three healthy replicas and a running Redis (left as they are when
    the test before left them so: `compose up` takes seconds even when it has nothing to do)."""
    states = stack.states()
    go = [(state, health) for service, state, health in states if service == "go-service"]
    redis = [state for service, state, _ in states if service == "redis"]
    if go != [("running", "healthy")] * REPLICAS or redis != ["running"]:
        stack.compose("start", "redis")
        scale(stack, REPLICAS)
    assert len(stack.go_replicas_direct()) == REPLICAS


def test_1_every_replica_answers_the_same_time_and_age(stack: Stack) -> None:
    # Asked round after round until one value has aged a second on every replica. Within a
    # round each value is answered with one Age (whole seconds: a tick may pass between two
    # answers), and where the TTL ended during a round the value that replaced the old one was
    # made no earlier than the old one expired: the body is the time the value was made (the
    # replicas' clock), so values made by replicas that did not share would lie closer.
    rounds: list[list[tuple[str, int]]] = []

    def aged() -> bool:
        rounds.append(replica_answers(stack))
        return len({body for body, _ in rounds[-1]}) == 1 and min(a for _, a in rounds[-1]) >= 1

    wait_until(aged, timeout_s=10 * TTL, interval_s=0.2, what="a shared value a second old")
    for answers in rounds:
        ages: dict[str, list[int]] = {}
        for body, age in answers:
            ages.setdefault(body, []).append(age)
        for value_ages in ages.values():
            assert max(value_ages) - min(value_ages) <= 1, answers
        made = sorted(datetime.fromisoformat(body.strip()) for body in ages)
        for older, newer in itertools.pairwise(made):
            assert (newer - older).total_seconds() >= TTL, answers


def test_2_the_fleet_fills_each_key_once_per_ttl_under_load(stack: Stack) -> None:
    fills, errors, served = 'cache_fills_total{key="time"}', "redis_errors_total", SERVED
    before = {url: metric_samples(f"{url}/metrics") for url in stack.go_replicas_direct()}
    started = time.monotonic()
    report = stop_load_after(stack, start_load(go_time(stack), 48), seconds=4 * TTL)
    elapsed = time.monotonic() - started
    after = {url: metric_samples(f"{url}/metrics") for url in stack.go_replicas_direct()}
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
    # ...and the fleet filled /time once per TTL window the load spanned, not once per replica
    # (a slow machine stretches the span, and the allowance with it).
    windows = math.ceil(elapsed / TTL) + 1
    assert sum(d[fills] for d in delta.values()) <= windows, delta


def test_3_a_replica_killed_under_load_fails_no_request(stack: Stack) -> None:
    load = start_load(go_time(stack), 48)
    wait_for_answers(stack, 300, "the load to flow")
    victim = stack.containers("go-service")[0]["Id"]
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    # The load goes on past Nginx's next look at Docker's DNS (its answer is kept 1 s), and the
    # replicas left serve a share of it.
    time.sleep(2)
    wait_for_answers(stack, 300, "the replicas left to serve")
    report = stop_load(stack, load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report
    assert report["status"]["200"] > 100, report


def test_4_scaling_3_to_5_to_2_under_load_fails_no_request(stack: Stack) -> None:
    load = start_load(go_time(stack), 48)
    try:
        wait_for_answers(stack, 300, "the load to flow")
        scale(stack, 5)
        replicas = stack.go_replicas_direct()
        assert len(replicas) == 5
        # Nginx finds the new replicas by itself (no reload): each serves once Nginx has asked
        # Docker's DNS again (its answer is kept 1 s).
        wait_until(
            lambda: all(metric_samples(f"{url}/metrics").get(SERVED, 0) > 0 for url in replicas),
            timeout_s=30,
            interval_s=0.5,
            what="all 5 replicas to serve /time through Nginx",
        )
        scale(stack, 2)
        assert len(stack.go_replicas_direct()) == 2
        # Past Nginx's next look at the DNS, and the two left serve a share of the load.
        time.sleep(2)
        wait_for_answers(stack, 300, "the two replicas left to serve")
    finally:
        report = stop_load(stack, load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report


def test_5_redis_stopped_under_load_gives_only_200s_then_sharing_resumes(stack: Stack) -> None:
    errors_before = per_replica(stack, "redis_errors_total")
    load = start_load(go_time(stack), 24)
    try:
        wait_for_answers(stack, 300, "the load to flow")
        stack.compose("stop", "redis")
        # Every replica's in-process copy expires and meets Redis down (counted as an error).
        wait_until(
            lambda: all(
                errors > errors_before[url]
                for url, errors in per_replica(stack, "redis_errors_total").items()
            ),
            timeout_s=10 * TTL,
            interval_s=0.5,
            what="every replica to meet Redis down",
        )
        stack.compose("start", "redis")
        # The load goes on until the replicas share again.
        wait_until(
            lambda: len(replica_times(stack)) == 1,
            timeout_s=30,
            interval_s=0.5,
            what="the replicas to share again",
        )
    finally:
        report = stop_load(stack, load)
    assert set(report["status"]) == {"200"}, report
    assert report["failed"] + report["not_connected"] == 0, report


def test_6_redis_past_its_maxmemory_evicts_and_the_fleet_keeps_sharing(stack: Stack) -> None:
    (settings,) = stack.container("redis")["NetworkSettings"]["Networks"].values()
    address = settings["IPAddress"]
    value = "x" * 4096
    # 80 MB of values into a 64 MB maxmemory, pipelined, 1,000 at a time, under the keys the Go
    # service's ACL user may write (deploy/redis/users_acl.sh).
    auth = resp("AUTH", "go-service", stack.redis_go_service_password)
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
    monitor = ("monitor", stack.redis_monitor_password)
    info = (
        redis_command(address, *monitor, "INFO", "memory").decode()
        + redis_command(address, *monitor, "INFO", "stats").decode()
    )
    fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
    print({k: fields[k] for k in ("used_memory", "maxmemory", "evicted_keys")}, file=sys.stderr)
    assert int(fields["evicted_keys"]) > 0
    assert int(fields["used_memory"]) <= int(fields["maxmemory"]) * 11 // 10
    assert http_request(go_time(stack)).status == 200
    time.sleep(TTL)  # past the TTL of what the replicas held before: a value filled anew
    assert shared_time(stack)


def stop_load_after(stack: Stack, load: subprocess.Popen, seconds: float) -> dict[str, Any]:
    time.sleep(seconds)  # the load's length: the TTL windows it spans
    return stop_load(stack, load)
