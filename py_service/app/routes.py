"""The service's routes. Every route answers GET and HEAD, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, Response, jsonify, request

from py_service.app.cache import CachedValue, RouteCache
from py_service.app.config import Config
from py_service.app.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from py_service.app.metrics import Metrics
from py_service.app.negotiation import preferred

TEXT_MIMETYPE = "text/plain"
JSON_MIMETYPE = "application/json"
STATIC_TEXT = "Hello from py_service."


def register_routes(
    app: Flask,
    *,
    config: Config,
    cache: RouteCache,
    clock: Callable[[], float],
    metrics: Metrics,
) -> None:
    def route(rule: str) -> Callable[[Callable[[], Response]], Callable[[], Response]]:
        # Flask adds HEAD to GET routes itself; OPTIONS is turned off because
        # the contract allows only GET and HEAD.
        return app.route(rule, methods=["GET"], provide_automatic_options=False)

    @route("/")
    def banner() -> Response:
        return text_response(f"py_service (Flask), cache backend: {config.cache_backend}")

    @route("/static-text")
    def static_text() -> Response:
        return negotiated_response("text", cache.fetch("static-text", lambda: STATIC_TEXT))

    @route("/time")
    def server_time() -> Response:
        return negotiated_response("time", cache.fetch("time", lambda: rfc3339(clock())))

    @route("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), content_type=METRICS_CONTENT_TYPE)

    @route("/healthz")
    def healthz() -> Response:
        """Liveness: answering at all is the proof of life."""
        return text_response("ok")

    @route("/readyz")
    def readyz() -> Response:
        """Readiness: always 200 once the app serves requests.

        Redis is deliberately not checked: in redis mode a Redis outage only
        makes responses uncached (see RedisCache), so taking the instance out of
        the load balancer would turn a slower service into no service. The
        contract's 503 while starting or draining needs no code here: gunicorn
        loads the app before a worker accepts connections, and a worker told to
        stop (SIGTERM) stops accepting new ones and only finishes those in flight.
        """
        return text_response("ready")

    @app.after_request
    def common_headers(response: Response) -> Response:
        # Only the cacheable routes say how they may be cached; everything else
        # (metrics, health, errors) must never be served from a cache.
        response.headers.setdefault("Cache-Control", "no-store")
        # Every response (api/openapi.json, x-common): the type is Content-Type's.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def text_response(text: str, status: int = 200) -> Response:
    """A text/plain; charset=utf-8 response with a trailing newline."""
    return Response(f"{text}\n", status=status, mimetype=TEXT_MIMETYPE)


def negotiated_response(field: str, cached: CachedValue) -> Response:
    """JSON `{field: value}` when the client prefers JSON (app/negotiation.py), else text."""
    if preferred(request.headers.getlist("Accept"), OFFERS) == JSON_MIMETYPE:
        response = jsonify({field: cached.value})
    else:
        response = text_response(cached.value)
    response.headers.update(cached.headers)
    response.vary.add("Accept")
    return response


# The negotiated routes' media types, in the server's order of preference.
OFFERS = (TEXT_MIMETYPE, JSON_MIMETYPE)


def rfc3339(timestamp: float) -> str:
    """UTC RFC 3339 time with whole seconds, e.g. 2024-05-01T12:00:00Z."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
