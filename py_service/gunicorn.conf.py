"""gunicorn settings for py_service: gunicorn -c py_service/gunicorn.conf.py py_service.wsgi:app

Environment (besides the app's own, see py_service/app/config.py):
  BIND                      listen address, default 0.0.0.0:8000
  WEB_CONCURRENCY           worker processes, default 2 * CPUs + 1, at most 8
  GUNICORN_THREADS          threads per worker, default 4
  GUNICORN_MAX_REQUESTS     recycle a worker after about this many requests,
                            default 0: never (see below)
  GUNICORN_WORKER_TMP_DIR   heartbeat file dir, default /dev/shm when present
  GUNICORN_ACCESS_LOG_SAMPLE  log 1 in N successful requests (failures and slow
                            ones always), default 1: all (py_service/access_log.py)
  PROMETHEUS_MULTIPROC_DIR  where workers keep metric values, emptied at startup;
                            when unset, a temporary directory removed at exit

SIGTERM is a graceful shutdown: each worker stops listening at once (see
py_service/graceful.py), answers what it has received with "Connection: close",
keeps idle keep-alive connections for gunicorn's 2 s linger, lets in-flight
requests finish for up to graceful_timeout seconds, then exits 0.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# prometheus_client chooses between in-memory and multiprocess storage when it
# is first imported, reading this variable. Workers fork from this master
# process, so it has to be set before the imports below load prometheus_client.
# The default is named after this (master) process rather than made with
# mkdtemp because gunicorn may execute this file more than once; on_starting
# creates it and on_exit removes it.
_default_multiproc_dir = Path(tempfile.gettempdir()) / f"py_service-metrics-{os.getpid()}"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_default_multiproc_dir)
_multiproc_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from prometheus_client import multiprocess  # noqa: E402

from py_service.access_log import sample_from_env  # noqa: E402
from py_service.app.config import Config  # noqa: E402
from py_service.graceful import stop_listening_on_sigterm  # noqa: E402

try:
    _config = Config.from_env(os.environ)
    sample_from_env(os.environ)  # a bad value stops the master, not every worker
except ValueError as error:
    # One line on stderr and exit status 1, before any worker starts.
    sys.exit(f"py_service: invalid configuration: {error}")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        sys.exit(f"py_service: invalid configuration: {name} must be an integer, got {value!r}")


bind = [os.environ.get("BIND", "").strip() or "0.0.0.0:8000"]

# gthread: each worker process serves several requests at once on threads, so a
# slow Redis or client ties up a thread rather than a whole process.
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", min(2 * (os.cpu_count() or 1) + 1, 8))
threads = _env_int("GUNICORN_THREADS", 4)

timeout = 30
graceful_timeout = 20
# Longer than Nginx's upstream keepalive_timeout (60 s by default), so Nginx is
# the side that closes idle connections; otherwise a request sent just as
# gunicorn closes one gets a 502.
keepalive = 75

# No worker recycling by default (GUNICORN_MAX_REQUESTS turns it on). Under
# load, recycling every ~1,000 requests restarted each worker every ~1.6 s, and
# workers booted together recycle together: for a moment no worker accepts,
# connections queue on the master's socket, and a SIGTERM then (the master
# closes its socket first) resets every one of them after its request was sent
# (seen: 50 of 50 clients reset, with all three workers exiting just before).
# Memory stays bounded by the container's limit (compose.yaml), and the fault
# test's 60 s load checks each container's peak against it.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10

# Workers touch a heartbeat file constantly; on a disk-backed /tmp (common in
# containers) that can stall them, so prefer tmpfs.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (
    "/dev/shm" if os.path.isdir("/dev/shm") else None
)

# gunicorn >= 25 opens an admin socket at a fixed per-user path by default;
# nothing here uses it, and several instances on one host would contend for it.
control_socket_disable = True

accesslog = "-"
logger_class = "py_service.access_log.SampledAccessLogger"
errorlog = "-"
loglevel = _config.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "py_service.app.json_logging.JsonFormatter"},
        "access_json": {"()": "py_service.app.json_logging.AccessJsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access_json",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"level": _config.log_level, "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _config.log_level, "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    # Value files left by an earlier run would be added to this run's counts.
    # Only prometheus_client's own *.db files are removed, in case the variable
    # points somewhere shared.
    _multiproc_dir.mkdir(parents=True, exist_ok=True)
    for stale in _multiproc_dir.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    # Lets the aggregation drop the dead worker's live-only gauges; its
    # counters stay, so totals don't go backwards when workers are recycled.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _multiproc_dir == _default_multiproc_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    stop_listening_on_sigterm(worker)
