"""Service configuration, read once from the environment and validated up front."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from os.path import isabs
from typing import Any
from urllib.parse import urlsplit

from py_service.app.duration import parse_duration

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


class CacheBackend(StrEnum):
    """Where responses of the cacheable routes are cached."""

    NGINX = "nginx"
    REDIS = "redis"


@dataclass(frozen=True)
class Config:
    """Validated settings; invalid values raise ValueError naming the environment variable."""

    cache_backend: CacheBackend = CacheBackend.NGINX
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A file holding the password of REDIS_URL's user (a Redis ACL user), read at start.
    redis_password_file: str | None = None
    # Whole seconds (Cache-Control's max-age and Redis' EX take no fraction); CACHE_TTL spells it
    # as the Go service does (60s, 1m). Equal to deploy/stack.env's STACK_PY_CACHE_TTL
    # (//deploy:stack_settings_test).
    cache_ttl: int = 60
    redis_timeout: float = 0.2
    log_level: str = "INFO"
    prometheus_multiproc_dir: str | None = None

    def __post_init__(self) -> None:
        if self.cache_ttl < 1:
            raise ValueError(f"CACHE_TTL must be at least 1s, got {self.cache_ttl}s")
        if not 0 < self.redis_timeout <= 10:
            raise ValueError(f"REDIS_TIMEOUT must be in (0, 10] seconds, got {self.redis_timeout}")
        if self.log_level not in LOG_LEVELS:
            choices = ", ".join(LOG_LEVELS)
            raise ValueError(f"LOG_LEVEL must be one of {choices}, got {self.log_level!r}")
        if self.prometheus_multiproc_dir is not None and not isabs(self.prometheus_multiproc_dir):
            # The master and every worker must name the same directory, whatever their working
            # directory (gunicorn changes it to its chdir setting).
            raise ValueError(
                "PROMETHEUS_MULTIPROC_DIR must be an absolute path, "
                f"got {self.prometheus_multiproc_dir!r}"
            )
        if urlsplit(self.redis_url).scheme not in REDIS_URL_SCHEMES:
            choices = ", ".join(f"{scheme}://" for scheme in REDIS_URL_SCHEMES)
            redacted = redact_url(self.redis_url)  # the URL may carry a password
            raise ValueError(f"REDIS_URL must start with {choices}; got {redacted!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        """Build a Config from environment variables; unset or empty ones keep the defaults."""

        def read(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        settings: dict[str, Any] = {}
        if backend := read("CACHE_BACKEND"):
            settings["cache_backend"] = _cache_backend(backend)
        if redis_url := read("REDIS_URL"):
            settings["redis_url"] = redis_url
        if password_file := read("REDIS_PASSWORD_FILE"):
            settings["redis_password_file"] = password_file
        if ttl := read("CACHE_TTL"):
            settings["cache_ttl"] = _whole_seconds("CACHE_TTL", ttl)
        if timeout := read("REDIS_TIMEOUT"):
            settings["redis_timeout"] = _parse(float, "REDIS_TIMEOUT", timeout)
        if level := read("LOG_LEVEL"):
            settings["log_level"] = level.upper()
        if multiproc_dir := read("PROMETHEUS_MULTIPROC_DIR"):
            settings["prometheus_multiproc_dir"] = multiproc_dir
        return cls(**settings)


def redact_url(url: str) -> str:
    """url without its userinfo (user:password@), for logs and error messages. url need not
    parse; everything before the authority's last "@" goes, so a password holding an unescaped
    "@" or "/" goes too."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    authority_end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, authority_end)
    rest = rest[at + 1 :]
    return f"{scheme}://{rest}" if separator else rest


def read_secret(name: str, path: str | None) -> str | None:
    """The one line in the file at path (a mounted secret; a trailing newline is not part of it),
    None for no path. Raises ValueError naming the variable, never the file's content."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            secret = file.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}={path}: cannot read it ({type(error).__name__})") from None
    if not secret or "\n" in secret or "\r" in secret:
        raise ValueError(f"{name}={path}: want one non-empty line")
    return secret


def _cache_backend(value: str) -> CacheBackend:
    try:
        return CacheBackend(value.lower())
    except ValueError:
        choices = "|".join(backend.value for backend in CacheBackend)
        raise ValueError(f"CACHE_BACKEND must be {choices}, got {value!r}") from None


def _whole_seconds(name: str, value: str) -> int:
    """value in Go's duration syntax (60s, 1m), or a plain number of seconds: the spelling before
    both services shared Go's, still read so that an older deployment's "60" means what it did."""
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        nanoseconds = parse_duration(value)
    except ValueError:
        raise ValueError(
            f"{name} must be a duration like 60s or 1m (Go's syntax; a plain number is seconds), "
            f"got {value!r}"
        ) from None
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    if fraction:
        raise ValueError(f"{name} must be whole seconds, got {value!r}")
    return seconds


def _parse[N: (int, float)](parse: Callable[[str], N], name: str, value: str) -> N:
    try:
        return parse(value)
    except ValueError:
        raise ValueError(f"{name} must be a number ({parse.__name__}), got {value!r}") from None
