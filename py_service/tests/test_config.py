from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from py_service.app.config import CacheBackend, Config, read_secret, redact_url


def test_defaults_when_environment_is_empty() -> None:
    config = Config.from_env({})

    assert config == Config()
    assert config.cache_backend is CacheBackend.NGINX
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.cache_ttl == 60
    assert config.redis_timeout == 0.2
    assert config.log_level == "INFO"
    assert config.prometheus_multiproc_dir is None


def test_reads_every_variable() -> None:
    config = Config.from_env(
        {
            "CACHE_BACKEND": "Redis",
            "REDIS_URL": "redis://cache:6380/2",
            "REDIS_PASSWORD_FILE": "/run/secrets/redis-password",
            "CACHE_TTL": "5",
            "REDIS_TIMEOUT": "0.05",
            "LOG_LEVEL": "debug",
            "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
        }
    )

    assert config == Config(
        cache_backend=CacheBackend.REDIS,
        redis_url="redis://cache:6380/2",
        redis_password_file="/run/secrets/redis-password",  # noqa: S106 (a path)
        cache_ttl=5,
        redis_timeout=0.05,
        log_level="DEBUG",
        prometheus_multiproc_dir="/run/metrics",
    )


def test_blank_values_mean_default() -> None:
    assert Config.from_env({"CACHE_BACKEND": " ", "CACHE_TTL": ""}) == Config()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CACHE_BACKEND", "memcached"),
        ("CACHE_TTL", "abc"),
        ("CACHE_TTL", "1.5"),
        ("CACHE_TTL", "0"),
        ("CACHE_TTL", "-3"),
        ("CACHE_TTL", "-3s"),
        ("CACHE_TTL", "0s"),
        ("CACHE_TTL", "1.5s"),
        ("CACHE_TTL", "1500ms"),
        ("CACHE_TTL", "10x"),
        ("CACHE_TTL", "60 s"),
        ("CACHE_TTL", "1m30"),
        ("REDIS_TIMEOUT", "fast"),
        ("REDIS_TIMEOUT", "0"),
        ("REDIS_TIMEOUT", "nan"),
        ("REDIS_TIMEOUT", "200"),
        ("LOG_LEVEL", "chatty"),
        ("REDIS_URL", "127.0.0.1:6379"),
        ("PROMETHEUS_MULTIPROC_DIR", "metrics"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as raised:
        Config.from_env({variable: value})

    assert "\n" not in str(raised.value)
    assert value.lower() in str(raised.value).lower()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # Go's duration syntax, as the Go service reads its CACHE_TTL.
        ("60s", 60),
        ("1m", 60),
        ("1m30s", 90),
        ("1.5m", 90),
        ("90000ms", 90),
        ("0.5h", 1800),
        ("+2s", 2),
        # The older spelling, a plain number of seconds, still reads as seconds.
        ("60", 60),
        ("1", 1),
    ],
)
def test_cache_ttl_is_a_go_duration_or_plain_seconds(value: str, seconds: int) -> None:
    assert Config.from_env({"CACHE_TTL": value}).cache_ttl == seconds


def test_cache_ttl_error_says_which_spelling_is_wanted() -> None:
    with pytest.raises(ValueError, match="CACHE_TTL") as raised:
        Config.from_env({"CACHE_TTL": "1.5s"})

    assert str(raised.value) == "CACHE_TTL must be whole seconds, got '1.5s'"
    with pytest.raises(ValueError, match="CACHE_TTL") as raised:
        Config.from_env({"CACHE_TTL": "soon"})

    assert str(raised.value) == (
        "CACHE_TTL must be a duration like 60s or 1m (Go's syntax; a plain number is seconds), "
        "got 'soon'"
    )


def test_is_immutable() -> None:
    config = Config()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cache_ttl = 1  # type: ignore[misc]


def test_an_invalid_redis_url_is_reported_without_its_password() -> None:
    with pytest.raises(ValueError, match="REDIS_URL") as raised:
        Config.from_env({"REDIS_URL": "http://py-service-redis:s3cret@redis:6379/0"})

    assert "s3cret" not in str(raised.value)
    assert "http://redis:6379/0" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("redis://user:s3cret@redis:6379/0", "redis://redis:6379/0"),
        ("redis://:s3cret@redis:6379/0", "redis://redis:6379/0"),
        ("redis://user:s3/cr@t@redis/0", "redis://redis/0"),
        ("unix://user:s3cret@/run/redis.sock", "unix:///run/redis.sock"),
        ("user:s3cret@redis:6379", "redis:6379"),
        ("redis://redis/0?x=1#y", "redis://redis/0?x=1#y"),
    ],
)
def test_redact_url_drops_the_userinfo(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_read_secret_takes_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    assert read_secret("REDIS_PASSWORD_FILE", str(secret)) == "s3cret"
    assert read_secret("REDIS_PASSWORD_FILE", None) is None


@pytest.mark.parametrize("content", [None, "", "\n", "two\nlines\n"])
def test_read_secret_refuses_a_missing_or_bad_file(tmp_path: Path, content: str | None) -> None:
    secret = tmp_path / "password"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ValueError, match="REDIS_PASSWORD_FILE") as raised:
        read_secret("REDIS_PASSWORD_FILE", str(secret))
    assert "lines" not in str(raised.value)
