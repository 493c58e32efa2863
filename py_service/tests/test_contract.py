"""The app against the shared HTTP contract, api/openapi.json at the repository root."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from py_service.app.config import CacheBackend
from py_service.tests.support import find_contract

CONTRACT: dict[str, Any] = json.loads(find_contract().read_text(encoding="utf-8"))
COMMON: dict[str, Any] = CONTRACT["x-common"]
PATHS: dict[str, dict[str, Any]] = CONTRACT["paths"]
ALLOWED = COMMON["methods"]
DISALLOWED = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TTL = 42


def operation(path: str) -> dict[str, Any]:
    return PATHS[path]["get"]


def media_types(path: str, status: int) -> dict[str, Any]:
    return operation(path)["responses"][str(status)]["content"]


def cached_paths() -> list[str]:
    return [path for path in PATHS if operation(path).get("x-cached")]


def json_paths() -> list[str]:
    return [path for path in PATHS if "application/json" in media_types(path, 200)]


def test_contract_names_only_get_operations() -> None:
    # The rest of this file relies on it; a new method in the contract needs new code.
    assert {method for item in PATHS.values() for method in item} == {"get"}
    assert ALLOWED == ["GET", "HEAD"]


def test_app_serves_exactly_the_contract_paths(app: Flask) -> None:
    assert {rule.rule for rule in app.url_map.iter_rules()} == set(PATHS)


@pytest.mark.parametrize("method", ALLOWED)
@pytest.mark.parametrize("path", list(PATHS))
def test_allowed_methods_answer_with_a_declared_status_and_type(
    app: Flask, path: str, method: str
) -> None:
    response = app.test_client().open(path, method=method)

    assert str(response.status_code) in operation(path)["responses"]
    assert response.content_type in media_types(path, response.status_code)
    if method == "HEAD":
        assert response.data == b""


@pytest.mark.parametrize("path", json_paths())
def test_json_representation_when_declared(app: Flask, path: str) -> None:
    schema = media_types(path, 200)["application/json"]["schema"]

    response = app.test_client().get(path, headers={"Accept": "application/json"})

    assert response.content_type == "application/json"
    body = json.loads(response.data)
    assert set(schema["required"]) <= set(body)
    for name, spec in schema["properties"].items():
        assert spec["type"] == "string"
        assert isinstance(body[name], str)


NEGOTIATION: dict[str, Any] = COMMON["content-negotiation"]


@pytest.mark.parametrize("path", json_paths())
@pytest.mark.parametrize("case", NEGOTIATION["cases"], ids=lambda case: repr(case["accept"]))
def test_content_negotiation_follows_the_contract(
    app: Flask, path: str, case: dict[str, Any]
) -> None:
    headers = {} if case["accept"] is None else {"Accept": case["accept"]}

    response = app.test_client().get(path, headers=headers)

    assert response.mimetype == case["type"]
    assert "Accept" in response.vary


@pytest.mark.parametrize("method", DISALLOWED)
@pytest.mark.parametrize("path", list(PATHS))
def test_wrong_method(app: Flask, path: str, method: str) -> None:
    rule = COMMON["wrong-method"]

    response = app.test_client().open(path, method=method)

    assert response.status_code == rule["status"]
    assert response.headers[rule["header"]] == rule["allow"]


@pytest.mark.parametrize("path", ["/does-not-exist", "/time/extra", "/python/time"])
def test_unknown_path(app: Flask, path: str) -> None:
    rule = COMMON["unknown-path"]

    response = app.test_client().get(path)

    assert response.status_code == rule["status"]
    assert response.content_type == rule["content-type"]


@pytest.mark.parametrize("path", list(PATHS))
def test_nginx_mode_cache_headers_follow_x_cached(
    make_app: Callable[..., Flask], path: str
) -> None:
    response = make_app(cache_ttl=TTL).test_client().get(path)

    if operation(path).get("x-cached"):
        assert response.headers["Cache-Control"] == f"public, max-age={TTL}"
    else:
        assert response.headers["Cache-Control"] == "no-store"
    for header in COMMON["in-process-cache-headers"]:
        assert header not in response.headers


@pytest.mark.parametrize("path", cached_paths())
def test_redis_mode_sets_in_process_cache_headers(
    make_app: Callable[..., Flask], redis_server: Any, path: str
) -> None:
    client = make_app(cache_backend=CacheBackend.REDIS, redis_url=redis_server.url).test_client()

    for _ in range(2):  # a MISS, then a HIT
        response = client.get(path)
        assert response.headers["X-Cache"] in COMMON["x-cache-values"]
        assert int(response.headers["Age"]) >= 0
        assert response.headers["Cache-Control"] == COMMON["caching"]["in-process-cache-control"]


@pytest.mark.parametrize("method", ALLOWED + DISALLOWED)
@pytest.mark.parametrize("path", [*PATHS, "/not-in-the-contract"])
def test_every_response_carries_the_common_headers(app: Flask, path: str, method: str) -> None:
    response = app.test_client().open(path, method=method)

    for name, value in COMMON["response-headers"].items():
        if name != "rule":
            assert response.headers.get(name) == value, (method, path, response.status_code)
