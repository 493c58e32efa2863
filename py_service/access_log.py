"""gunicorn's access log, sampled: every failure and every slow request, 1 in N of the rest.

Behind Nginx every request is already in Nginx's access log, with its status, duration and
upstream time; formatting and writing one JSON line per request a second time cost the app about
a tenth of a worker's CPU time (py-spy, tools/dev/bench's python_gunicorn scenario). Standalone,
N is
1 and every request is logged.

Configured by gunicorn.conf.py as gunicorn's `logger_class` (its documented extension point);
GUNICORN_ACCESS_LOG_SAMPLE sets N (1: every request, the default; 0: failures and slow ones only).
"""

from __future__ import annotations

import datetime
import itertools
import os
from typing import Any

from gunicorn import glogging

# A request that took this long is logged whatever its status (seconds).
SLOW_REQUEST_S = 1.0
ENV = "GUNICORN_ACCESS_LOG_SAMPLE"


def sample_from_env(environ: os._Environ[str] | dict[str, str]) -> int:
    """N from GUNICORN_ACCESS_LOG_SAMPLE (default 1).

    Raises ValueError for anything but an integer >= 0."""
    raw = environ.get(ENV, "").strip() or "1"
    try:
        every = int(raw)
    except ValueError:
        every = -1
    if every < 0:
        raise ValueError(f"{ENV} must be an integer >= 0 (1: log every request), got {raw!r}")
    return every


class SampledAccessLogger(glogging.Logger):
    """gunicorn's Logger whose access() logs a request when its status is not 2xx or 3xx, when it
    took SLOW_REQUEST_S or longer, or when it is the N-th success since the last one logged
    (per worker; N from GUNICORN_ACCESS_LOG_SAMPLE, 0 for none). Everything else is unchanged."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.every = sample_from_env(os.environ)
        self._successes = itertools.count(1)

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
    ) -> None:
        status = resp.status_code if isinstance(resp.status_code, int) else 0
        routine = 200 <= status < 400 and request_time.total_seconds() < SLOW_REQUEST_S
        if routine and (self.every == 0 or next(self._successes) % self.every):
            return
        super().access(resp, req, environ, request_time)
