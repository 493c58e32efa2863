"""Routes, headers, negotiation and errors, in the default (nginx) cache mode."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask

from py_service.app.routes import STATIC_TEXT
from py_service.tests.support import FakeClock

TEXT = "text/plain; charset=utf-8"
ALL_ROUTES = ["/", "/static-text", "/time", "/metrics", "/healthz", "/readyz"]
CACHEABLE_ROUTES = ["/static-text", "/time"]
UNCACHEABLE_ROUTES = ["/", "/metrics", "/healthz", "/readyz"]


def test_banner_names_the_cache_backend(app: Flask) -> None:
    response = app.test_client().get("/")

    assert response.status_code == 200
    assert response.content_type == TEXT
    assert response.text.startswith("py_service")
    assert "cache backend: nginx" in response.text


def test_static_text_is_fixed(app: Flask) -> None:
    response = app.test_client().get("/static-text")

    assert response.status_code == 200
    assert response.content_type == TEXT
    assert response.text == STATIC_TEXT + "\n"


def test_time_is_rfc3339_utc_from_the_clock(app: Flask, clock: FakeClock) -> None:
    client = app.test_client()

    first = client.get("/time")
    clock.advance(61.9)
    later = client.get("/time")

    assert first.content_type == TEXT
    assert first.text == "2024-05-01T12:00:00Z\n"
    assert later.text == "2024-05-01T12:01:01Z\n"


@pytest.mark.parametrize(
    ("path", "body"),
    [("/healthz", "ok\n"), ("/readyz", "ready\n")],
)
def test_health_endpoints(app: Flask, path: str, body: str) -> None:
    response = app.test_client().get(path)

    assert response.status_code == 200
    assert response.content_type == TEXT
    assert response.text == body


@pytest.mark.parametrize(
    ("path", "accept", "expected"),
    [
        ("/time", "application/json", {"time": "2024-05-01T12:00:00Z"}),
        ("/static-text", "application/json", {"text": STATIC_TEXT}),
        ("/static-text", "text/plain;q=0.5, application/json", {"text": STATIC_TEXT}),
    ],
)
def test_json_when_preferred(app: Flask, path: str, accept: str, expected: dict[str, str]) -> None:
    response = app.test_client().get(path, headers={"Accept": accept})

    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert json.loads(response.data) == expected


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "text/plain", "text/*", "application/json;q=0.2, text/plain", "image/png"],
)
@pytest.mark.parametrize("path", CACHEABLE_ROUTES)
def test_text_unless_json_preferred(app: Flask, path: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}

    response = app.test_client().get(path, headers=headers)

    assert response.status_code == 200
    assert response.content_type == TEXT


@pytest.mark.parametrize("path", CACHEABLE_ROUTES)
def test_cacheable_routes_tell_nginx_the_ttl(make_app: Callable[..., Flask], path: str) -> None:
    response = make_app(cache_ttl=17).test_client().get(path)

    assert response.headers["Cache-Control"] == "public, max-age=17"
    assert response.headers["Vary"] == "Accept"
    assert "X-Cache" not in response.headers
    assert "Age" not in response.headers


@pytest.mark.parametrize("path", [*UNCACHEABLE_ROUTES, "/missing"])
def test_everything_else_is_no_store(app: Flask, path: str) -> None:
    client = app.test_client()

    assert client.get(path).headers["Cache-Control"] == "no-store"
    assert client.delete(path).headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ALL_ROUTES)
def test_head_has_get_headers_and_no_body(app: Flask, path: str) -> None:
    client = app.test_client()

    get = client.get(path)
    head = client.head(path)

    assert head.status_code == 200
    assert head.data == b""
    assert head.content_type == get.content_type
    assert head.headers.get("Cache-Control") == get.headers.get("Cache-Control")


@pytest.mark.parametrize("path", ["/nope", "/time/", "/static/app.css", "/TIME", "/metrics/x"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_unknown_path_is_plain_404(app: Flask, path: str, method: str) -> None:
    response = app.test_client().open(path, method=method)

    assert response.status_code == 404
    assert response.content_type == TEXT
    if method != "HEAD":
        assert response.text == "404 Not Found\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
@pytest.mark.parametrize("path", ALL_ROUTES)
def test_wrong_method_is_plain_405_with_allow(app: Flask, path: str, method: str) -> None:
    response = app.test_client().open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.content_type == TEXT
    assert response.text == "405 Method Not Allowed\n"


def test_unhandled_error_is_plain_500(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    app.testing = False  # let Flask turn the exception into a 500 instead of raising it

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert response.content_type == TEXT
    assert response.text == "500 Internal Server Error\n"
    assert response.headers["Cache-Control"] == "no-store"
