"""Prometheus metrics: definitions, per-request instrumentation and exposition.

Each app gets its own CollectorRegistry, so creating many apps in one process
(as the tests do) never trips prometheus_client's duplicate-metric check on the
global registry, and apps never see each other's counts.

Under gunicorn every worker is a separate process. prometheus_client then keeps
values in files under PROMETHEUS_MULTIPROC_DIR (it decides this when first
imported, from the environment), and a scrape, whichever worker answers it,
aggregates all workers' files with MultiProcessCollector.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from werkzeug.exceptions import MethodNotAllowed

from py_service.app.go_float import GoBucketBounds

# The contract pins the classic text format; prometheus_client's
# CONTENT_TYPE_LATEST moved to version=1.0.0 in newer releases.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Label values must come from a fixed set, or a scan of random URLs or methods
# would create unbounded series. The names, labels, values and buckets are the
# vocabulary both services share, written down in api/metrics.json.
NOT_FOUND_HANDLER = "notfound"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# From 100 µs (most requests finish well under a millisecond) to 10 s (the
# longest proxy read timeout).
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# Written by Bazel next to the package (//py_service:build_info, from //:version.bzl and, in a
# stamped build, the git revision); absent when the sources run outside Bazel. Not resolved:
# under Bazel the module is a runfiles symlink into the source tree, which has no such file.
BUILD_INFO_FILE = Path(__file__).parent.parent / "build_info.json"


@dataclass(frozen=True)
class BuildInfo:
    """What is running: build_info{version, revision, runtime} = 1."""

    version: str
    revision: str
    runtime: str

    @classmethod
    def load(cls, path: Path = BUILD_INFO_FILE) -> BuildInfo:
        """The build's version and revision from path ("unknown" when it is missing), and the
        interpreter as runtime, like "cpython3.13.5"."""
        try:
            stamp = json.loads(path.read_text())
        except FileNotFoundError:
            stamp = {}
        runtime = platform.python_implementation().lower() + platform.python_version()
        return cls(
            version=stamp.get("version", "unknown"),
            revision=stamp.get("revision", "unknown"),
            runtime=runtime,
        )


class BuildInfoCollector(Collector):
    """build_info as a constant collector: a value per process, the same in every worker, so it
    needs none of the multiprocess files (prometheus_client's Info does not support them)."""

    def __init__(self, info: BuildInfo) -> None:
        self.info = info

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "build_info",
            "Always 1; the labels name the running build: product version, source revision, "
            "language runtime.",
            labels=["version", "revision", "runtime"],
        )
        family.add_metric([self.info.version, self.info.revision, self.info.runtime], 1)
        yield family


@dataclass(frozen=True)
class Metrics:
    """The service's metrics, registered in their own registry."""

    registry: CollectorRegistry
    multiproc_dir: str | None
    build_info: BuildInfoCollector
    http_requests: Counter
    http_request_duration: Histogram
    cache_requests: Counter
    redis_errors: Counter
    redis_invalid_values: Counter

    @classmethod
    def create(cls, multiproc_dir: str | None, build_info: BuildInfo | None = None) -> Metrics:
        registry = CollectorRegistry()
        info = BuildInfoCollector(build_info or BuildInfo.load())
        registry.register(info)
        return cls(
            registry=registry,
            multiproc_dir=multiproc_dir,
            build_info=info,
            http_requests=Counter(
                "http_requests",
                "HTTP requests served.",
                ["handler", "method", "code"],
                registry=registry,
            ),
            http_request_duration=Histogram(
                "http_request_duration_seconds",
                "Time spent answering HTTP requests.",
                ["handler", "method"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            cache_requests=Counter(
                "cache_requests",
                "Lookups in the Redis response cache, by result (hit, miss, error).",
                ["result"],
                registry=registry,
            ),
            redis_errors=Counter(
                "redis_errors",
                "Redis commands that failed or timed out; the request was served uncached.",
                registry=registry,
            ),
            redis_invalid_values=Counter(
                "redis_invalid_values",
                "Values read from Redis that were rejected (oversized, malformed, of the wrong "
                "type, or made in the future); each was a miss, overwritten by a fresh value.",
                registry=registry,
            ),
        )

    def render(self) -> bytes:
        """The text exposition of all metrics, summed over workers in multiprocess mode."""
        if self.multiproc_dir is None:
            return generate_latest(GoBucketBounds(self.registry))
        registry = CollectorRegistry()
        registry.register(SettledFilesCollector(self.multiproc_dir))
        registry.register(self.build_info)
        return generate_latest(GoBucketBounds(registry))


# MmapedDict's header: a 4-byte "used" count and 4 bytes of padding.
_VALUE_FILE_HEADER = 8


class SettledFilesCollector(MultiProcessCollector):
    """MultiProcessCollector without the value files still being created.

    prometheus_client creates a worker's file empty, then sizes it: a scrape
    that reads it in between fails with struct.error, and a file left empty by
    a worker that died right then would fail every later scrape. Such a file
    holds no value yet, so leaving it out loses nothing.
    """

    def __init__(self, path: str) -> None:
        super().__init__(registry=None, path=path)

    def collect(self) -> Iterable[Metric]:
        files = [
            path
            for path in glob.glob(os.path.join(self._path, "*.db"))
            if _size(path) >= _VALUE_FILE_HEADER
        ]
        return self.merge(files, accumulate=True)


def _size(path: str) -> int:
    """A file's size in bytes; 0 for one removed meanwhile (a dead worker's live gauges)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def instrument(app: Flask, metrics: Metrics) -> None:
    """Count and time every request the app answers, including 404s, 405s and 500s."""

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        handler = _handler_label(app)
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        metrics.http_requests.labels(handler, method, str(response.status_code)).inc()
        metrics.http_request_duration.labels(handler, method).observe(
            time.perf_counter() - g.request_started
        )
        return response


def _handler_label(app: Flask) -> str:
    if request.url_rule is not None:
        return request.url_rule.rule
    if isinstance(request.routing_exception, MethodNotAllowed):
        # The path exists and only the method is wrong: file the 405 under the
        # route it was aimed at. Every route answers GET, so matching as GET
        # finds it.
        adapter = app.create_url_adapter(request)
        if adapter is not None:
            rule, _ = adapter.match(method="GET", return_rule=True)
            return rule.rule
    return NOT_FOUND_HANDLER
