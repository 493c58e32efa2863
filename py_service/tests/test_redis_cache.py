"""The redis cache backend, against a real redis-server the tests start, and against a fake Redis
(support.FakeRedis) where a test needs to see what the client sends and when."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import secrets
import shutil
import socket
import threading
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
from py_service.tests.support import (
    REDIS_TIMEOUT_S,
    FakeClock,
    FakeRedis,
    RedisServer,
    never_answer,
    redis_reply,
    sample_sum,
)
from tools.testing.python.support import wait_until

# Lookups made at once by the tests of concurrency, and how long the fake Redis holds the first
# lookup for the others: a correct app gets them all there within milliseconds, one that serialises
# its Redis calls never does and fails after BARRIER_TIMEOUT_S. The client's timeout
# (REDIS_TIMEOUT_S) is longer, so a lookup held at the barrier is one its client still waits for.
LOOKUPS = 4
BARRIER_TIMEOUT_S = 8


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
    app = make_app(
        cache_backend=CacheBackend.REDIS,
        redis_url=redis_server.url,
        redis_timeout=REDIS_TIMEOUT_S,
        cache_ttl=30,
    )

    app.test_client().get("/static-text")

    with redis_server.client() as client:
        assert 0 < client.ttl(KEY_PREFIX + "static-text") <= 30


def test_entry_expires_after_the_ttl(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    app = make_app(
        cache_backend=CacheBackend.REDIS,
        redis_url=redis_server.url,
        redis_timeout=REDIS_TIMEOUT_S,
        cache_ttl=1,
    )
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
    # Refused at once (milliseconds); waiting out the timeout would take all of REDIS_TIMEOUT_S.
    assert elapsed < REDIS_TIMEOUT_S / 2, f"answered after {elapsed:.1f} s"
    text = scrape(client)
    assert sample_sum(text, "redis_errors_total") == 1  # one command tried, no retry
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
def hung_redis() -> Iterator[FakeRedis]:
    """A Redis that accepts connections and commands and never answers (docker pause)."""
    with FakeRedis(never_answer) as fake:
        yield fake


def commands_once_closed(fake: FakeRedis, connections: int) -> list[bytes]:
    """The fake's command names once `connections` connections to it have been closed: it has
    then read all they carried (its threads may lag the app's)."""
    wait_until(
        lambda: fake.closed >= connections,
        timeout_s=30,
        interval_s=0.01,
        what=f"{connections} connection(s) to the fake Redis to close",
    )
    return fake.names()


def test_slow_redis_times_out_and_serves_uncached(
    make_app: Callable[..., Flask], hung_redis: FakeRedis
) -> None:
    timeout = 0.2
    app = make_app(
        cache_backend=CacheBackend.REDIS, redis_url=hung_redis.url, redis_timeout=timeout
    )
    client = app.test_client()

    started = time.monotonic()
    response = client.get("/static-text")
    elapsed = time.monotonic() - started

    # Redis never answers, so an answer at all means the timeout ended the wait: on the first
    # command of the connection's set-up (HELLO, redis-py's handshake).
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert commands_once_closed(hung_redis, 1) == [b"HELLO"]  # one try
    assert sample_sum(scrape(client), "redis_errors_total") == 1
    # How long only the real clock can say: not before the timeout, and nowhere near 30 of them
    # (a slow machine adds milliseconds, a second try or a missing timeout whole timeouts).
    assert timeout <= elapsed < 30 * timeout, f"answered after {elapsed:.2f} s"


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
    make_app: Callable[..., Flask], hung_redis: FakeRedis
) -> None:
    # A frozen Redis (docker pause) accepts connections and never answers: without the breaker
    # every request waited the full timeout, so 100 clients queued for seconds.
    app = make_app(cache_backend=CacheBackend.REDIS, redis_url=hung_redis.url, redis_timeout=0.2)
    client = app.test_client()
    for _ in range(BREAKER_FAILURES):
        assert client.get("/time").status_code == 200  # each waits out the timeout

    responses = [client.get("/time") for _ in range(20)]

    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Cache"] for r in responses} == {"MISS"}
    # Counted on both sides: the app tried Redis BREAKER_FAILURES times, and Redis got as many
    # commands; the 20 requests during the back-off never reached it.
    text = scrape(client)
    assert sample_sum(text, "redis_errors_total") == BREAKER_FAILURES
    assert sample_sum(text, "cache_requests_total", result="error") == BREAKER_FAILURES + 20
    assert commands_once_closed(hung_redis, BREAKER_FAILURES) == [b"HELLO"] * BREAKER_FAILURES


def test_concurrent_lookups_are_in_flight_at_redis_together(
    make_app: Callable[..., Flask],
) -> None:
    # The breaker must not serialise Redis calls (pybreaker's lock did): LOOKUPS threads of one
    # worker, each with its lookup (GETRANGE) in flight at the same time, not one after another.
    all_in = threading.Barrier(LOOKUPS, timeout=BARRIER_TIMEOUT_S)

    def hold_gets(command: list[bytes]) -> bytes:
        if command[0].upper() == b"GETRANGE":
            with contextlib.suppress(threading.BrokenBarrierError):  # answered, and reported below
                all_in.wait()
        return redis_reply(command)

    with FakeRedis(hold_gets) as fake:
        app = make_app(
            cache_backend=CacheBackend.REDIS, redis_url=fake.url, redis_timeout=REDIS_TIMEOUT_S
        )
        with ThreadPoolExecutor(LOOKUPS) as pool:
            responses = list(pool.map(lambda _: app.test_client().get("/time"), range(LOOKUPS)))

    assert [r.status_code for r in responses] == [200] * LOOKUPS
    assert not all_in.broken, (
        f"only {fake.max_in_flight} of {LOOKUPS} Redis commands were ever in flight at once"
    )
    assert fake.names().count(b"GETRANGE") == LOOKUPS


def test_a_new_connection_reads_no_package_metadata(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py 8.1 names itself on each new connection (CLIENT SETINFO LIB-NAME, LIB-VER); left
    # to itself, it looks its version up in the installed packages' metadata for each one, a scan
    # of every sys.path entry, under the lock every thread's connection pool shares.
    version_lookups: list[str] = []
    real_version = importlib.metadata.version

    def counted_version(name: str) -> str:
        version_lookups.append(name)
        return real_version(name)

    with FakeRedis() as fake:
        app = make_app(
            cache_backend=CacheBackend.REDIS, redis_url=fake.url, redis_timeout=REDIS_TIMEOUT_S
        )
        monkeypatch.setattr(importlib.metadata, "version", counted_version)
        with ThreadPoolExecutor(LOOKUPS) as pool:
            responses = list(pool.map(lambda _: app.test_client().get("/time"), range(LOOKUPS)))

        assert [r.status_code for r in responses] == [200] * LOOKUPS
        assert version_lookups == []
        # It still says who it is, once per connection.
        setinfo = [c[2:] for c in fake.commands if c[:2] == [b"CLIENT", b"SETINFO"]]
        assert fake.connections >= 1
        assert setinfo.count([b"LIB-VER", redis.__version__.encode()]) == fake.connections


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
