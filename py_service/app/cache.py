"""The two ways the cacheable routes are cached: by Nginx, or in Redis."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import circuitbreaker
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from py_service.app.config import CacheBackend, Config, read_secret, redact_url
from py_service.app.metrics import Metrics

log = logging.getLogger(__name__)

# Bump when the stored entry format changes so old entries are never misread.
KEY_PREFIX = "py_service:v1:"

# A stored entry is {"value": str, "stored_at": epoch seconds}, a few dozen bytes. Whatever else
# is under a key was not written by this service: a lookup reads at most one byte past this bound
# (GETRANGE), so a huge value is never loaded into a worker.
MAX_ENTRY_BYTES = 4096
# How far ahead of this worker's clock an entry's birth time may be (clocks differ a little
# between hosts). Further ahead, it would be served with Age 0 until then.
MAX_CLOCK_SKEW_S = 1.0


class InvalidEntry(ValueError):
    """A value in Redis that this service did not write; the message says what is wrong."""


def decode_entry(stored: bytes | None, now: float) -> tuple[str, float]:
    """The value and birth time of a stored entry (None: Redis holds no string under the key).
    Raises InvalidEntry unless it is what fetch stores, made at most MAX_CLOCK_SKEW_S ahead."""
    if stored is None:
        raise InvalidEntry("not a string")
    if len(stored) > MAX_ENTRY_BYTES:
        raise InvalidEntry(f"larger than {MAX_ENTRY_BYTES} bytes")
    try:
        entry = json.loads(stored.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidEntry("not UTF-8") from None
    except ValueError:
        raise InvalidEntry("not JSON") from None
    if not isinstance(entry, dict) or entry.keys() != {"value", "stored_at"}:
        raise InvalidEntry("not an object of value and stored_at")
    value, stored_at = entry["value"], entry["stored_at"]
    if not isinstance(value, str):
        raise InvalidEntry("value not a string")
    # bool is an int to Python, and json.loads takes NaN and Infinity.
    if isinstance(stored_at, bool) or not isinstance(stored_at, int | float):
        raise InvalidEntry("stored_at not a number")
    if not math.isfinite(stored_at):
        raise InvalidEntry("stored_at not finite")
    if stored_at - now > MAX_CLOCK_SKEW_S:
        raise InvalidEntry(f"made {stored_at - now:.0f} s in the future")
    return value, float(stored_at)


@dataclass(frozen=True)
class CachedValue:
    """A route's value plus the response headers that describe how it was cached."""

    value: str
    headers: dict[str, str]


class RouteCache(Protocol):
    def fetch(self, key: str, compute: Callable[[], str]) -> CachedValue:
        """Return the value for key, calling compute when there is no usable cached one."""
        ...


class NginxCache:
    """Computes every time and lets Nginx (or any HTTP cache) keep the response for the TTL."""

    def __init__(self, ttl: int) -> None:
        self._headers = {"Cache-Control": f"public, max-age={ttl}"}

    def fetch(self, key: str, compute: Callable[[], str]) -> CachedValue:
        return CachedValue(compute(), self._headers)


# After this many Redis failures in a row (errors or timeouts), Redis is not asked at all for
# BREAKER_RESET_S seconds; then requests try it again (half-open) and one success closes the
# breaker. A hung Redis otherwise costs every request its full timeout, and the queue behind
# those requests starves the rest (health checks included).
BREAKER_FAILURES = 3
BREAKER_RESET_S = 5


class RedisCache:
    """Caches values in Redis for the TTL; when Redis fails it serves uncached, never an error.

    A circuit breaker (the circuitbreaker package) stops asking a failing Redis for
    BREAKER_RESET_S seconds after BREAKER_FAILURES failures in a row: uncached answers then come
    back in microseconds, not after a timeout each. It holds no lock around the Redis call, so a
    worker's threads still reach Redis in parallel (pybreaker serialises calls under its lock).
    cache_requests_total{result="error"} counts every lookup served without Redis,
    redis_errors_total only the commands that failed.

    Nothing read from Redis is trusted: an entry that decode_entry rejects (oversized, not
    UTF-8 or JSON, fields missing or of the wrong type, made in the future, or not a string at
    all) is a miss, counted in redis_invalid_values_total and overwritten by the fresh value.

    Responses say `Cache-Control: no-store`: Redis is the only cache in this
    mode, and letting Nginx keep them too would stack a second TTL on top and
    make X-Cache and Age describe a response the client never got.
    """

    def __init__(
        self, client: redis.Redis, ttl: int, clock: Callable[[], float], metrics: Metrics
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._metrics = metrics
        # Only Redis' own failures count; anything else is a bug, raised as usual.
        breaker = circuitbreaker.CircuitBreaker(
            failure_threshold=BREAKER_FAILURES,
            recovery_timeout=BREAKER_RESET_S,
            expected_exception=redis.RedisError,
            name="redis",
        )
        self._read = breaker(_reader(client))
        self._set = breaker(client.set)
        # Log only when Redis goes down or comes back, not once per request of an outage.
        self._failing = False

    def fetch(self, key: str, compute: Callable[[], str]) -> CachedValue:
        redis_key = KEY_PREFIX + key
        try:
            stored = self._read(redis_key)
        except (redis.RedisError, circuitbreaker.CircuitBreakerError) as error:
            self._record_unavailable(error)
            return _cached(compute(), "MISS", 0)
        now = self._clock()
        if stored != b"":  # GETRANGE's answer for a missing key
            try:
                value, stored_at = decode_entry(stored, now)
            except InvalidEntry as problem:  # a miss: the value computed below overwrites it
                self._metrics.redis_invalid_values.inc()
                log.warning(
                    "invalid redis cache entry; refilling",
                    extra={"key": redis_key, "problem": str(problem)},
                )
            else:
                if now - stored_at < self._ttl:
                    self._record("hit")
                    return _cached(value, "HIT", max(0, int(now - stored_at)))

        value = compute()
        entry = {"value": value, "stored_at": now}
        try:
            self._set(redis_key, json.dumps(entry), ex=self._ttl)
        except (redis.RedisError, circuitbreaker.CircuitBreakerError) as error:
            self._record_unavailable(error)
        else:
            self._record("miss")
        return _cached(value, "MISS", 0)

    def _record(self, result: str) -> None:
        self._metrics.cache_requests.labels(result).inc()
        if self._failing:
            self._failing = False
            log.info("redis reachable again; caching resumed")

    def _record_unavailable(self, error: Exception) -> None:
        self._metrics.cache_requests.labels("error").inc()
        if isinstance(error, redis.RedisError):  # not skipped by the open breaker: it failed
            self._metrics.redis_errors.inc()
        if not self._failing:
            self._failing = True
            log.warning(
                "redis unavailable; serving uncached",
                extra={"error": f"{type(error).__name__}: {error}"},
            )


def _reader(client: redis.Redis) -> Callable[[str], bytes | None]:
    """Reads an entry, at most MAX_ENTRY_BYTES + 1 bytes of it: b"" when the key is missing, None
    when it holds no string (Redis answered; its WRONGTYPE is not a failure of Redis)."""

    def read(key: str) -> bytes | None:
        try:
            return client.getrange(key, 0, MAX_ENTRY_BYTES)
        except redis.ResponseError as error:
            if str(error).startswith("WRONGTYPE"):
                return None
            raise

    return read


def _cached(value: str, status: str, age: int) -> CachedValue:
    return CachedValue(value, {"X-Cache": status, "Age": str(age), "Cache-Control": "no-store"})


def build_cache(config: Config, clock: Callable[[], float], metrics: Metrics) -> RouteCache:
    """The cache for config.cache_backend."""
    if config.cache_backend is CacheBackend.NGINX:
        return NginxCache(config.cache_ttl)
    password = read_secret("REDIS_PASSWORD_FILE", config.redis_password_file)
    client = redis.Redis.from_url(
        config.redis_url,
        # The ACL user's password, from a file; REDIS_URL's own password, if any, wins.
        password=password,
        socket_timeout=config.redis_timeout,
        socket_connect_timeout=config.redis_timeout,
        # A retry would only make the request wait longer for the same outage.
        retry=Retry(NoBackoff(), retries=0),
        # How redis-py names itself on each new connection (CLIENT SETINFO), made once: by default
        # every new connection reads redis-py's version from the installed packages' metadata (a
        # scan of sys.path), holding the lock of the pool all of a worker's threads share.
        driver_info=redis.DriverInfo(),
    )
    # Without its userinfo: the URL may carry a password.
    log.info(
        "caching in redis",
        extra={"redis": redact_url(config.redis_url), "password_file": password is not None},
    )
    return RedisCache(client, config.cache_ttl, clock, metrics)
