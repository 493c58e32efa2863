"""prometheus_client's multiprocess directory through gunicorn's life cycle, as server hooks.

Each gunicorn worker is a process of its own: prometheus_client keeps its metric values in files of
the directory named by PROMETHEUS_MULTIPROC_DIR (read by the library itself when a worker creates
its first metric), and a scrape sums every worker's files (py_service/app/metrics.py). The library
asks for the directory to be emptied before the server starts and for each dead worker to be marked
dead (https://prometheus.github.io/client_python/multiprocess/). The directory's path is passed in,
never read from or written to the environment here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

# prometheus_client's value files: counter_<pid>.db, histogram_<pid>.db, gauge_<mode>_<pid>.db.
VALUE_FILES = "*.db"


class MultiprocDir:
    """gunicorn's on_starting, child_exit and on_exit hooks for the directory at `path`.

    All three run in gunicorn's master process. Only prometheus_client's *.db files are touched,
    in case the directory is shared with something else.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_starting(self, server: Any) -> None:
        """Create the directory and remove the value files of an earlier run, which would
        otherwise be added to this run's counts. Before any worker starts.

        Raises RuntimeError naming PROMETHEUS_MULTIPROC_DIR when that fails (gunicorn prints it on
        one line and exits 1)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._remove_value_files()
        except OSError as error:
            raise RuntimeError(
                f"PROMETHEUS_MULTIPROC_DIR {str(self.path)!r} cannot be prepared: {error}"
            ) from None

    def child_exit(self, server: Any, worker: Any) -> None:
        """Mark the dead worker (its `pid`) dead: the sums drop its live-only gauges and keep its
        counters, so that totals do not go backwards when a worker is replaced."""
        multiprocess.mark_process_dead(worker.pid, str(self.path))

    def on_exit(self, server: Any) -> None:
        """Remove this run's value files, then the directory if nothing else is left in it (a
        directory still in use, or a mount point, stays)."""
        self._remove_value_files()
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def _remove_value_files(self) -> None:
        for value_file in self.path.glob(VALUE_FILES):
            value_file.unlink(missing_ok=True)
