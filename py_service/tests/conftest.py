"""Shared fixtures: apps on a fake clock, and a real redis-server."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from py_service.app import create_app
from py_service.app.config import CacheBackend, Config
from py_service.tests.support import REDIS_TIMEOUT_S, FakeClock, RedisServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(clock: FakeClock) -> Callable[..., Flask]:
    """Build an app from Config keyword arguments, on the fake clock."""

    def make(**settings: Any) -> Flask:
        app = create_app(Config(**settings), clock=clock)
        app.testing = True
        return app

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
    server = RedisServer(executable, tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_app(make_app: Callable[..., Flask], redis_server: RedisServer) -> Flask:
    return make_app(
        cache_backend=CacheBackend.REDIS, redis_url=redis_server.url, redis_timeout=REDIS_TIMEOUT_S
    )
