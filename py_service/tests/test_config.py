from __future__ import annotations

import dataclasses

import pytest

from py_service.app.config import CacheBackend, Config


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
            "CACHE_TTL": "5",
            "REDIS_TIMEOUT": "0.05",
            "LOG_LEVEL": "debug",
            "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
        }
    )

    assert config == Config(
        cache_backend=CacheBackend.REDIS,
        redis_url="redis://cache:6380/2",
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


def test_is_immutable() -> None:
    config = Config()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cache_ttl = 1  # type: ignore[misc]
