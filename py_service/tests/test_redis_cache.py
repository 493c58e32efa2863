"""The redis cache backend against a real redis-server started by the tests."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from py_service.app.cache import BREAKER_FAILURES, KEY_PREFIX
from py_service.app.config import CacheBackend
from py_service.tests.support import FakeClock, RedisServer, sample_sum
from tools.testing.python.support import wait_until


def scrape(client: FlaskClient) -> str:
    return client.get("/metrics").text


@pytest.mark.parametrize("path", ["/time", "/static-text"])
def test_miss_then_hit_with_same_body(redis_app: Flask, path: str) -> None:
    client = redis_app.test_client()

    miss = client.get(path)
    hit = client.get(path)

    assert (miss.status_code, hit.status_code) == (200, 200)
    assert miss.headers["X-Cache"] == "MISS"
    assert miss.headers["Age"] == "0"
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.data == miss.data


def test_hit_serves_the_stored_time_and_its_age(redis_app: Flask, clock: FakeClock) -> None:
    client = redis_app.test_client()

    miss = client.get("/time")
    clock.advance(7.9)
    hit = client.get("/time")

    assert miss.text == "2024-05-01T12:00:00Z\n"
    assert hit.text == miss.text
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Age"] == "7"


def test_text_and_json_share_one_entry(redis_app: Flask, clock: FakeClock) -> None:
    client = redis_app.test_client()

    client.get("/time")
    clock.advance(3)
    as_json = client.get("/time", headers={"Accept": "application/json"})

    assert as_json.headers["X-Cache"] == "HIT"
    assert json.loads(as_json.data) == {"time": "2024-05-01T12:00:00Z"}
    assert as_json.headers["Vary"] == "Accept"


def test_responses_are_not_for_nginx_to_cache(redis_app: Flask) -> None:
    client = redis_app.test_client()

    for _ in range(2):
        assert client.get("/time").headers["Cache-Control"] == "no-store"


def test_entry_is_stored_with_the_ttl(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    app = make_app(cache_backend=CacheBackend.REDIS, redis_url=redis_server.url, cache_ttl=30)

    app.test_client().get("/static-text")

    with redis_server.client() as client:
        assert 0 < client.ttl(KEY_PREFIX + "static-text") <= 30


def test_entry_expires_after_the_ttl(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    app = make_app(cache_backend=CacheBackend.REDIS, redis_url=redis_server.url, cache_ttl=1)
    client = app.test_client()
    assert client.get("/time").headers["X-Cache"] == "MISS"
    assert client.get("/time").headers["X-Cache"] == "HIT"

    wait_until(
        lambda: client.get("/time").headers["X-Cache"] == "MISS",
        timeout_s=5,
        interval_s=0.05,
        what="the 1 s entry to expire",
    )


def test_hits_and_misses_are_counted(redis_app: Flask) -> None:
    client = redis_app.test_client()
    for _ in range(3):
        client.get("/time")

    text = scrape(client)

    assert sample_sum(text, "cache_requests_total", result="miss") == 1
    assert sample_sum(text, "cache_requests_total", result="hit") == 2
    assert sample_sum(text, "redis_errors_total") == 0


def test_redis_killed_mid_test_serves_uncached(
    redis_app: Flask, redis_server: RedisServer, clock: FakeClock
) -> None:
    client = redis_app.test_client()
    client.get("/time")
    assert client.get("/time").headers["X-Cache"] == "HIT"

    redis_server.kill()
    clock.advance(5)
    started = time.monotonic()
    response = client.get("/time")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Age"] == "0"
    assert response.text == "2024-05-01T12:00:05Z\n"  # freshly computed
    assert elapsed < 1
    text = scrape(client)
    assert sample_sum(text, "redis_errors_total") == 1
    assert sample_sum(text, "cache_requests_total", result="error") == 1
    assert client.get("/readyz").status_code == 200


def test_recovers_when_redis_comes_back(redis_app: Flask, redis_server: RedisServer) -> None:
    client = redis_app.test_client()
    client.get("/static-text")
    redis_server.kill()
    assert client.get("/static-text").status_code == 200

    redis_server.start()  # same port, empty data set

    assert client.get("/static-text").headers["X-Cache"] == "MISS"
    assert client.get("/static-text").headers["X-Cache"] == "HIT"
    assert sample_sum(scrape(client), "redis_errors_total") == 1


def test_redis_down_from_the_start(make_app: Callable[..., Flask]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        # Bound but not listening: connections are refused.
        app = make_app(cache_backend=CacheBackend.REDIS, redis_url=f"redis://127.0.0.1:{port}/0")
        client = app.test_client()

        responses = [client.get("/time") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.headers["X-Cache"] for r in responses} == {"MISS"}
    assert sample_sum(scrape(client), "redis_errors_total") == 3


@pytest.fixture
def unresponsive_redis() -> Iterator[str]:
    """A loopback port that accepts connections (via the backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_slow_redis_times_out_and_serves_uncached(
    make_app: Callable[..., Flask], unresponsive_redis: str
) -> None:
    app = make_app(
        cache_backend=CacheBackend.REDIS, redis_url=unresponsive_redis, redis_timeout=0.1
    )
    client = app.test_client()

    started = time.monotonic()
    response = client.get("/static-text")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert elapsed < 1.5
    assert sample_sum(scrape(client), "redis_errors_total") == 1


def test_outage_is_logged_once_and_recovery_once(
    redis_app: Flask, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="py_service.app.cache")
    client = redis_app.test_client()
    redis_server.kill()
    for _ in range(BREAKER_FAILURES - 1):  # the breaker stays closed: the next try reaches Redis
        client.get("/time")
    redis_server.start()
    client.get("/time")

    messages = [r.getMessage() for r in caplog.records if r.name == "py_service.app.cache"]
    assert messages == [
        "redis unavailable; serving uncached",
        "redis reachable again; caching resumed",
    ]


def test_a_hung_redis_is_not_asked_again_for_the_back_off(
    make_app: Callable[..., Flask], unresponsive_redis: str
) -> None:
    # A frozen Redis (docker pause) accepts connections and never answers: without the breaker
    # every request waited the full timeout, so 100 clients queued for seconds.
    app = make_app(
        cache_backend=CacheBackend.REDIS, redis_url=unresponsive_redis, redis_timeout=0.2
    )
    client = app.test_client()
    for _ in range(BREAKER_FAILURES):
        assert client.get("/time").status_code == 200  # each waits out the timeout

    started = time.monotonic()
    responses = [client.get("/time") for _ in range(20)]
    elapsed = time.monotonic() - started

    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Cache"] for r in responses} == {"MISS"}
    assert elapsed < 20 * 0.2 / 2, f"20 requests took {elapsed:.2f} s: Redis was asked again"
    text = scrape(client)
    assert sample_sum(text, "redis_errors_total") == BREAKER_FAILURES
    assert sample_sum(text, "cache_requests_total", result="error") == BREAKER_FAILURES + 20


def test_concurrent_lookups_reach_a_slow_redis_in_parallel(
    make_app: Callable[..., Flask], unresponsive_redis: str
) -> None:
    # The breaker must not serialise Redis calls: 4 threads of one worker, each waiting out the
    # 0.2 s timeout at the same time, not one after another (pybreaker's lock did: 0.2-0.8 s).
    app = make_app(
        cache_backend=CacheBackend.REDIS, redis_url=unresponsive_redis, redis_timeout=0.2
    )

    def timed_lookup(_: int) -> float:
        started = time.monotonic()
        assert app.test_client().get("/time").status_code == 200
        return time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        latencies = list(pool.map(timed_lookup, range(4)))

    assert max(latencies) < 2 * 0.2, latencies
