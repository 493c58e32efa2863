"""The server's settings, read once from the environment and validated before any worker starts.

gunicorn.conf.py turns them into gunicorn's settings. Every server knob is parsed here, and only
here; the app's own knobs (py_service/app/config.py, which workers read again in create_app) are
validated here too, so that a bad value stops the master with one line rather than every worker.

Environment (besides the app's own, see py_service/app/config.py):
  BIND                        listen address, gunicorn's syntax (HOST:PORT, unix:PATH, fd://N);
                              default 0.0.0.0:8000
  WEB_CONCURRENCY             worker processes, >= 1; default 2 * CPUs + 1, at most 8
  GUNICORN_THREADS            threads per worker, >= 1; default 4
  GUNICORN_MAX_REQUESTS       recycle a worker after about this many requests, >= 0;
                              default 0: never (gunicorn.conf.py says why)
  GUNICORN_WORKER_TMP_DIR     an existing directory for the workers' heartbeat files;
                              default /dev/shm when present, else gunicorn's (the temp dir)
  GUNICORN_ACCESS_LOG_SAMPLE  log 1 in N successful requests (failures and slow ones always),
                              >= 0; default 1: every request (py_service/access_log.py)
  PROMETHEUS_MULTIPROC_DIR    required, absolute: where prometheus_client keeps each worker's
                              metric values (py_service/multiproc_dir.py). The library reads it
                              from the environment the process starts with, so whoever starts
                              the server sets it (the image, Compose, the tests, `bazel run`'s
                              env); nothing here writes it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gunicorn.util import parse_address

from py_service.app.config import Config

MAX_DEFAULT_WORKERS = 8
DEV_SHM = Path("/dev/shm")


@dataclass(frozen=True)
class ServerSettings:
    """Validated settings of the gunicorn server and of the app it serves."""

    app: Config
    multiproc_dir: Path
    bind: str
    workers: int
    threads: int
    max_requests: int
    worker_tmp_dir: str | None
    access_log_sample: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerSettings:
        """Settings from environment variables; unset or blank ones take the defaults above.

        Raises ValueError naming the variable, and the value, when one is invalid (the app's
        variables included), or when PROMETHEUS_MULTIPROC_DIR is unset: gunicorn's workers are
        separate processes, and without the directory each would report only its own counts.
        """
        app = Config.from_env(environ)
        if app.prometheus_multiproc_dir is None:
            raise ValueError(
                "PROMETHEUS_MULTIPROC_DIR must be set: gunicorn's workers keep their metric "
                "values there (prometheus_client's multiprocess mode)"
            )
        return cls(
            app=app,
            multiproc_dir=Path(app.prometheus_multiproc_dir),
            bind=_bind(environ),
            workers=_integer(environ, "WEB_CONCURRENCY", default_workers(os.cpu_count()), 1),
            threads=_integer(environ, "GUNICORN_THREADS", 4, 1),
            max_requests=_integer(environ, "GUNICORN_MAX_REQUESTS", 0, 0),
            worker_tmp_dir=_worker_tmp_dir(environ),
            access_log_sample=_integer(environ, "GUNICORN_ACCESS_LOG_SAMPLE", 1, 0),
        )


def load(environ: Mapping[str, str]) -> ServerSettings:
    """ServerSettings.from_env, or exit with status 1 and one line on stderr naming the variable
    (gunicorn.conf.py runs this before gunicorn starts a worker)."""
    try:
        return ServerSettings.from_env(environ)
    except ValueError as error:
        sys.exit(f"py_service: invalid configuration: {error}")


def default_workers(cpus: int | None) -> int:
    """2 * CPUs + 1 (gunicorn's suggestion), at most MAX_DEFAULT_WORKERS; cpus None: unknown, 1."""
    return min(2 * (cpus or 1) + 1, MAX_DEFAULT_WORKERS)


def _raw(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


def _integer(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = _raw(environ, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return value


def _bind(environ: Mapping[str, str]) -> str:
    raw = _raw(environ, "BIND") or "0.0.0.0:8000"
    try:
        address = parse_address(raw)  # gunicorn's own parser: what passes here, gunicorn reads
    except RuntimeError:
        address = None
    if address is None or (isinstance(address, tuple) and not 0 <= address[1] <= 65535):
        raise ValueError(f"BIND must be HOST:PORT, unix:PATH or fd://N, got {raw!r}")
    return raw


def _worker_tmp_dir(environ: Mapping[str, str]) -> str | None:
    raw = _raw(environ, "GUNICORN_WORKER_TMP_DIR")
    if raw is None:
        # Workers touch their heartbeat file constantly; on a disk-backed /tmp (common in
        # containers) that can stall them, so tmpfs when there is one.
        return str(DEV_SHM) if DEV_SHM.is_dir() else None
    if not Path(raw).is_dir():
        raise ValueError(f"GUNICORN_WORKER_TMP_DIR must be an existing directory, got {raw!r}")
    return raw
