"""gunicorn settings for py_service: gunicorn -c py_service/gunicorn.conf.py py_service.wsgi:app

Settings only. The environment is read and validated by py_service/server_settings.py (its
docstring lists every variable); the server hooks live in py_service/multiproc_dir.py
(prometheus_client's multiprocess directory) and py_service/graceful.py (stop listening on
SIGTERM).

SIGTERM is a graceful shutdown: each worker stops listening at once, answers what it has received
with "Connection: close", keeps idle keep-alive connections for gunicorn's 2 s linger, lets
in-flight requests finish for up to graceful_timeout seconds, then exits 0.
"""

import os

from py_service import graceful, server_settings
from py_service.access_log import SampledAccessLogger
from py_service.multiproc_dir import MultiprocDir

# A bad value stops here, in the master, with one line naming the variable: not in every worker.
_settings = server_settings.load(os.environ)

bind = [_settings.bind]

# gthread: a slow Redis or client ties up one thread of a worker, not the whole process.
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads

# A worker silent this long (seconds) is killed and replaced.
timeout = 30
# In-flight requests get this long after SIGTERM: less than the 30 s the stack gives the container
# to stop (compose.yaml's stop_grace_period, the pod's terminationGracePeriodSeconds).
graceful_timeout = 20
# Longer than Nginx's upstream keepalive_timeout (60 s by default), so Nginx is the side that
# closes idle connections; otherwise a request sent just as gunicorn closes one gets a 502.
keepalive = 75

# No worker recycling by default (GUNICORN_MAX_REQUESTS turns it on). Under load, recycling every
# ~1,000 requests restarted each worker every ~1.6 s, and workers booted together recycle together:
# for a moment no worker accepts, connections queue on the master's socket, and a SIGTERM then (the
# master closes its socket first) resets every one of them after its request was sent (seen: 50 of
# 50 clients reset, with all three workers exiting just before). Memory stays bounded by the
# container's limit (compose.yaml), and the fault test's 60 s load checks each container's peak.
max_requests = _settings.max_requests
# Spread so that workers booted together are not recycled together.
max_requests_jitter = max_requests // 10

# Workers touch their heartbeat file constantly: tmpfs by default (server_settings.py).
worker_tmp_dir = _settings.worker_tmp_dir

# gunicorn >= 25 opens an admin socket at a fixed per-user path by default; nothing here uses it,
# and several instances on one host would contend for it.
control_socket_disable = True

accesslog = "-"
# Every failure and slow request, 1 in GUNICORN_ACCESS_LOG_SAMPLE successes (access_log.py).
logger_class = SampledAccessLogger.sampling(_settings.access_log_sample)
errorlog = "-"
loglevel = _settings.app.log_level.lower()
# JSON lines: the error log on stderr, the access log on stdout.
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
    "root": {"level": _settings.app.log_level, "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.app.log_level, "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}

# Server hooks.
_multiproc_dir = MultiprocDir(_settings.multiproc_dir)
on_starting = _multiproc_dir.on_starting
child_exit = _multiproc_dir.child_exit
on_exit = _multiproc_dir.on_exit
post_worker_init = graceful.post_worker_init
