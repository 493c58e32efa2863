from __future__ import annotations

import os
from pathlib import Path

import pytest

from py_service import server_settings
from py_service.app.config import CacheBackend, Config
from py_service.server_settings import ServerSettings, default_workers, load

# The one variable without a default.
REQUIRED = {"PROMETHEUS_MULTIPROC_DIR": "/run/metrics"}


def settings(**environ: str) -> ServerSettings:
    return ServerSettings.from_env({**REQUIRED, **environ})


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(server_settings, "DEV_SHM", tmp_path)

    assert settings() == ServerSettings(
        app=Config(prometheus_multiproc_dir="/run/metrics"),
        multiproc_dir=Path("/run/metrics"),
        bind="0.0.0.0:8000",
        workers=default_workers(os.cpu_count()),
        threads=4,
        max_requests=0,
        worker_tmp_dir=str(tmp_path),
        access_log_sample=1,
    )


def test_reads_every_variable(tmp_path: Path) -> None:
    assert settings(
        BIND="127.0.0.1:9000",
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="8",
        GUNICORN_MAX_REQUESTS="1000",
        GUNICORN_WORKER_TMP_DIR=str(tmp_path),
        GUNICORN_ACCESS_LOG_SAMPLE="100",
        CACHE_BACKEND="redis",
        LOG_LEVEL="warning",
    ) == ServerSettings(
        app=Config(
            cache_backend=CacheBackend.REDIS,
            log_level="WARNING",
            prometheus_multiproc_dir="/run/metrics",
        ),
        multiproc_dir=Path("/run/metrics"),
        bind="127.0.0.1:9000",
        workers=3,
        threads=8,
        max_requests=1000,
        worker_tmp_dir=str(tmp_path),
        access_log_sample=100,
    )


def test_blank_values_mean_default() -> None:
    assert settings(WEB_CONCURRENCY=" ", GUNICORN_THREADS="", BIND="") == settings()


@pytest.mark.parametrize("bind", ["[::1]:8000", "unix:/run/py.sock", "fd://3", "localhost"])
def test_bind_takes_gunicorn_addresses(bind: str) -> None:
    assert settings(BIND=bind).bind == bind


@pytest.mark.parametrize(("cpus", "workers"), [(None, 3), (1, 3), (2, 5), (3, 7), (4, 8), (64, 8)])
def test_default_workers_follow_the_cpus_up_to_a_bound(cpus: int | None, workers: int) -> None:
    assert default_workers(cpus) == workers


def test_worker_tmp_dir_is_gunicorns_default_without_dev_shm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(server_settings, "DEV_SHM", tmp_path / "missing")
    assert settings().worker_tmp_dir is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BIND", "127.0.0.1:http"),
        ("BIND", "127.0.0.1:70000"),
        ("BIND", "fd://stdin"),
        ("WEB_CONCURRENCY", "many"),
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "2.5"),
        ("GUNICORN_THREADS", "x"),
        ("GUNICORN_THREADS", "0"),
        ("GUNICORN_MAX_REQUESTS", "-1"),
        ("GUNICORN_MAX_REQUESTS", "1e3"),
        ("GUNICORN_WORKER_TMP_DIR", "/nonexistent/heartbeats"),
        ("GUNICORN_ACCESS_LOG_SAMPLE", "-1"),
        ("GUNICORN_ACCESS_LOG_SAMPLE", "1.5"),
        ("PROMETHEUS_MULTIPROC_DIR", "metrics"),
        ("CACHE_TTL", "soon"),
    ],
)
def test_bad_value_names_the_variable_and_the_value(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as raised:
        settings(**{variable: value})

    assert "\n" not in str(raised.value)
    assert repr(value) in str(raised.value)


def test_the_multiprocess_directory_is_required() -> None:
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR must be set"):
        ServerSettings.from_env({})


def test_load_exits_with_one_line_naming_the_variable() -> None:
    with pytest.raises(SystemExit) as exited:
        load({**REQUIRED, "GUNICORN_THREADS": "lots"})

    assert exited.value.code == (
        "py_service: invalid configuration: GUNICORN_THREADS must be an integer >= 1, got 'lots'"
    )


def test_load_returns_valid_settings() -> None:
    assert load(REQUIRED) == settings()
