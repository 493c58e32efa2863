"""gunicorn's access log, sampled: every failure and every slow request, 1 in N of the rest.

Behind Nginx every request is already in Nginx's access log, with its status, duration and
upstream time; formatting and writing one JSON line per request a second time cost the app about
a tenth of a worker's CPU time (py-spy, tools/dev/bench's python_gunicorn scenario). Standalone,
N is 1 and every request is logged.

gunicorn.conf.py sets `logger_class` (gunicorn's documented extension point) to
SampledAccessLogger.sampling(N), N from GUNICORN_ACCESS_LOG_SAMPLE (py_service/server_settings.py).
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any, ClassVar

from gunicorn import glogging

# A request that took this long is logged whatever its status (seconds).
SLOW_REQUEST_S = 1.0


class SampledAccessLogger(glogging.Logger):
    """gunicorn's Logger whose access() logs a request when its status is not 2xx or 3xx, when it
    took SLOW_REQUEST_S or longer, or when it is the `every`-th success since the last one logged
    (per worker; 1: every request, 0: none). Everything else is unchanged."""

    every: ClassVar[int] = 1

    @classmethod
    def sampling(cls, every: int) -> type[SampledAccessLogger]:
        """This logger class logging 1 in `every` successes (>= 0), for gunicorn's logger_class
        setting, which takes a class and makes an instance of it in the master and each worker.

        Raises ValueError when every is negative."""
        if every < 0:
            raise ValueError(f"the access log sample must be >= 0, got {every}")
        return type(cls.__name__, (cls,), {"every": every})

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._successes = itertools.count(1)

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
    ) -> None:
        status = resp.status_code if isinstance(resp.status_code, int) else 0
        routine = 200 <= status < 400 and request_time.total_seconds() < SLOW_REQUEST_S
        if routine and (self.every == 0 or next(self._successes) % self.every):
            return
        super().access(resp, req, environ, request_time)
