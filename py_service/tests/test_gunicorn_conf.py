"""py_service/gunicorn.conf.py read by gunicorn's own loader, as `gunicorn -c` reads it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
from gunicorn.app.base import Application
from gunicorn.config import Config

from py_service import graceful
from py_service.access_log import SampledAccessLogger
from py_service.multiproc_dir import MultiprocDir
from py_service.tests.support import SERVICE_DIR

GUNICORN_CONFIG = SERVICE_DIR / "gunicorn.conf.py"


class ConfigFile(Application):
    """gunicorn's Application with only the config file: no command line, no app."""

    def load_config(self) -> None:
        self.load_config_from_file(str(GUNICORN_CONFIG))

    def init(self, parser: Any, opts: Any, args: Any) -> None:
        return None

    def load(self) -> Any:
        raise AssertionError("the app is not loaded here")


def load_config(monkeypatch: pytest.MonkeyPatch, **environ: str) -> Config:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return ConfigFile().cfg


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = load_config(
        monkeypatch,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        BIND="127.0.0.1:9000",
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="2",
        GUNICORN_MAX_REQUESTS="500",
        GUNICORN_WORKER_TMP_DIR=str(tmp_path),
        GUNICORN_ACCESS_LOG_SAMPLE="100",
        LOG_LEVEL="warning",
    )

    assert cfg.bind == ["127.0.0.1:9000"]
    assert cfg.worker_class_str == "gthread"
    assert (cfg.workers, cfg.threads) == (3, 2)
    assert (cfg.max_requests, cfg.max_requests_jitter) == (500, 50)
    assert cfg.worker_tmp_dir == str(tmp_path)
    assert cfg.loglevel == "warning"
    assert issubclass(cfg.logger_class, SampledAccessLogger)
    assert cfg.logger_class.every == 100


def test_hooks_are_bound_to_the_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = load_config(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    for hook in (cfg.on_starting, cfg.child_exit, cfg.on_exit):
        assert isinstance(hook.__self__, MultiprocDir)
        assert hook.__self__.path == tmp_path
    assert cfg.post_worker_init is graceful.post_worker_init


@pytest.mark.parametrize("multiproc_dir_set", [True, False])
def test_loading_writes_no_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, multiproc_dir_set: bool
) -> None:
    if multiproc_dir_set:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    before = dict(os.environ)

    with contextlib.suppress(SystemExit):  # unset: required, so loading stops
        ConfigFile()

    assert dict(os.environ) == before


def test_a_bad_value_stops_loading_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_config(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), WEB_CONCURRENCY="0")

    assert exited.value.code == (
        "py_service: invalid configuration: WEB_CONCURRENCY must be an integer >= 1, got '0'"
    )
