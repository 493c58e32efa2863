"""The redis cache backend against a real redis-server started by the tests."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from py_service.app.cache import (
    BREAKER_FAILURES,
    KEY_PREFIX,
    MAX_CLOCK_SKEW_S,
    MAX_ENTRY_BYTES,
)
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


def entry(value: object, stored_at: object) -> bytes:
    return json.dumps({"value": value, "stored_at": stored_at}).encode()


NOW = FakeClock().now
TIME_KEY = KEY_PREFIX + "time"
# What another writer may leave under a key, each a value this service never stores.
PLANTED: dict[str, Callable[[float], bytes]] = {
    "stored an hour ahead": lambda now: entry("planted", now + 3600),
    "stored past the clock skew": lambda now: entry("planted", now + MAX_CLOCK_SKEW_S + 0.5),
    "8 MiB value": lambda now: entry("x" * (8 << 20), now),
    "one byte over the bound": lambda now: entry(
        "x" * (MAX_ENTRY_BYTES + 1 - len(entry("", now))), now
    ),
    "malformed json": lambda now: b'{"value": "planted", "stored_at": ',
    "not json": lambda now: f"{int(now * 1e9)}:planted".encode(),
    "value not a string": lambda now: entry(5, now),
    "stored_at a string": lambda now: entry("planted", "now"),
    "stored_at a bool": lambda now: entry("planted", True),
    "stored_at NaN": lambda now: b'{"value": "planted", "stored_at": NaN}',
    "value missing": lambda now: json.dumps({"stored_at": now}).encode(),
    "stored_at missing": lambda now: json.dumps({"value": "planted"}).encode(),
    "a json list": lambda now: json.dumps(["planted", now]).encode(),
    "not UTF-8": lambda now: entry("planted", now).replace(b"planted", b"planted\xff\xfe"),
}


def bytes_sent(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


@pytest.mark.parametrize("planted", [*PLANTED, "a list, not a string"])
def test_an_invalid_entry_is_a_miss_refilled_and_counted(
    redis_app: Flask, redis_server: RedisServer, clock: FakeClock, planted: str
) -> None:
    client = redis_app.test_client()
    with redis_server.client() as plain:
        if planted in PLANTED:
            plain.set(TIME_KEY, PLANTED[planted](clock()))
        else:
            plain.rpush(TIME_KEY, "planted")
        sent_before = bytes_sent(plain)

        response = client.get("/time")

        sent = bytes_sent(plain) - sent_before
        stored = plain.get(TIME_KEY)
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert response.text == "2024-05-01T12:00:00Z\n"  # computed, not the planted value
    assert sent < 1 << 20, f"Redis sent {sent} bytes: the entry was read past its bound"
    assert json.loads(stored) == {"value": "2024-05-01T12:00:00Z", "stored_at": clock()}
    assert client.get("/time").headers["X-Cache"] == "HIT"  # overwritten: the next one hits
    text = scrape(client)
    assert sample_sum(text, "redis_invalid_values_total") == 1
    assert sample_sum(text, "redis_errors_total") == 0
    assert sample_sum(text, "cache_requests_total", result="miss") == 1
    assert sample_sum(text, "cache_requests_total", result="hit") == 1


def test_an_invalid_entry_is_logged_with_what_is_wrong(
    redis_app: Flask, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="py_service.app.cache")
    with redis_server.client() as plain:
        plain.set(TIME_KEY, b"{not json")

    redis_app.test_client().get("/time")

    (record,) = [r for r in caplog.records if r.name == "py_service.app.cache"]
    assert record.getMessage() == "invalid redis cache entry; refilling"
    assert (record.key, record.problem) == (TIME_KEY, "not JSON")  # type: ignore[attr-defined]


def test_an_entry_stored_within_the_clock_skew_is_a_hit(
    redis_app: Flask, redis_server: RedisServer, clock: FakeClock
) -> None:
    with redis_server.client() as plain:
        plain.set(TIME_KEY, entry("from a fast clock", clock() + MAX_CLOCK_SKEW_S / 2))

    response = redis_app.test_client().get("/time")

    assert (response.headers["X-Cache"], response.headers["Age"]) == ("HIT", "0")
    assert response.text == "from a fast clock\n"
    assert sample_sum(scrape(redis_app.test_client()), "redis_invalid_values_total") == 0


def test_an_entry_older_than_the_ttl_is_refilled(
    redis_app: Flask, redis_server: RedisServer, clock: FakeClock
) -> None:
    # Redis' own expiry removes entries on time; one stored without it (by another writer) must not
    # be served forever with an ever larger Age.
    with redis_server.client() as plain:
        plain.set(TIME_KEY, entry("stale", clock() - 3600))

    response = redis_app.test_client().get("/time")

    assert (response.headers["X-Cache"], response.text) == ("MISS", "2024-05-01T12:00:00Z\n")


ACL_PASSWORD = secrets.token_urlsafe(18)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose default user is off: only py-service-redis (ACL_PASSWORD) gets in."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
    users = ("--user", "default", "off", "--user", "py-service-redis", "on", f">{ACL_PASSWORD}")
    server = RedisServer(executable, tmp_path, (*users, "~*", "+@all"))
    server.start()
    yield server
    server.kill()


def test_authenticates_as_its_acl_user_with_the_password_file(
    make_app: Callable[..., Flask],
    acl_redis: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="py_service.app.cache")
    password_file = tmp_path / "redis-password"
    password_file.write_text(ACL_PASSWORD + "\n")
    app = make_app(
        cache_backend=CacheBackend.REDIS,
        redis_url=f"redis://py-service-redis@127.0.0.1:{acl_redis.port}/0",
        redis_password_file=str(password_file),
    )
    client = app.test_client()

    assert client.get("/time").headers["X-Cache"] == "MISS"
    assert client.get("/time").headers["X-Cache"] == "HIT"
    assert sample_sum(scrape(client), "redis_errors_total") == 0
    (started,) = [r for r in caplog.records if r.getMessage() == "caching in redis"]
    assert started.redis == f"redis://127.0.0.1:{acl_redis.port}/0"  # type: ignore[attr-defined]


def test_without_the_password_it_serves_uncached(
    make_app: Callable[..., Flask], acl_redis: RedisServer
) -> None:
    app = make_app(
        cache_backend=CacheBackend.REDIS,
        redis_url=f"redis://py-service-redis@127.0.0.1:{acl_redis.port}/0",
    )
    client = app.test_client()

    assert client.get("/time").headers["X-Cache"] == "MISS"
    assert sample_sum(scrape(client), "redis_errors_total") == 1


def test_a_missing_password_file_stops_the_app_with_a_clear_error(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"REDIS_PASSWORD_FILE=.*cannot read it"):
        make_app(cache_backend=CacheBackend.REDIS, redis_password_file=str(tmp_path / "nope"))
