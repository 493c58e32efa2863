"""Prometheus metrics in single-process mode: counts, labels and series bounds."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import pytest
from flask import Flask

from py_service.app.go_float import go_float
from py_service.tests.support import sample_sum, samples


def scrape(app: Flask) -> str:
    return app.test_client().get("/metrics").text


def test_metrics_endpoint_format(app: Flask) -> None:
    response = app.test_client().get("/metrics")

    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "# TYPE http_requests_total counter" in response.text


def test_requests_are_counted_by_rule_method_and_code(app: Flask) -> None:
    client = app.test_client()
    for _ in range(3):
        client.get("/time")
    client.head("/time")
    client.post("/time")
    client.get("/no/such/page")
    client.open("/time", method="BREW")

    text = scrape(app)

    def requests(**labels: str) -> float:
        return sample_sum(text, "http_requests_total", **labels)

    assert requests(handler="/time", method="GET", code="200") == 3
    assert requests(handler="/time", method="HEAD", code="200") == 1
    assert requests(handler="/time", method="POST", code="405") == 1
    assert requests(handler="/time", method="OTHER", code="405") == 1
    assert requests(handler="notfound", method="GET", code="404") == 1
    assert sample_sum(text, "http_request_duration_seconds_count", handler="/time") == 6


def test_durations_use_sub_millisecond_buckets(app: Flask) -> None:
    app.test_client().get("/healthz")

    buckets = {
        dict(labels)["le"]
        for (name, labels), _ in samples(scrape(app)).items()
        if name == "http_request_duration_seconds_bucket"
    }

    assert {"0.0001", "0.0005", "0.001"} <= buckets


def test_bucket_bounds_are_written_as_the_go_client_writes_them(app: Flask) -> None:
    # The same bound must be the same label string in every exposer, or a fleet-wide
    # `sum by (le)` keeps "1" (Go, Nginx) and "1.0" apart and {le="1"} misses this service.
    app.test_client().get("/healthz")

    buckets = [
        dict(labels)["le"]
        for (name, labels), _ in samples(scrape(app)).items()
        if name == "http_request_duration_seconds_bucket"
    ]

    assert sorted(set(buckets), key=float) == [
        *("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025"),
        *("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"),
    ]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        # What strconv.FormatFloat(value, 'g', -1, 64) gives: the shortest string that reads
        # back as the value; an exponent below 1e-4 and from 1e6 on.
        (1.0, "1"),
        (10.0, "10"),
        (0.0, "0"),
        (2.5, "2.5"),
        (0.0005, "0.0005"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.000025, "2.5e-05"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e100, "1e+100"),
        (0.1 + 0.2, "0.30000000000000004"),
        (709352321340990.25, "7.093523213409902e+14"),  # a tie at the 16th digit: to even
        (-0.5, "-0.5"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_go_float(value: float, written: str) -> None:
    assert go_float(value) == written


def test_each_app_has_its_own_counts(make_app: Callable[..., Flask]) -> None:
    first, second = make_app(), make_app()

    first.test_client().get("/static-text")

    assert sample_sum(scrape(first), "http_requests_total", handler="/static-text") == 1
    assert sample_sum(scrape(second), "http_requests_total", handler="/static-text") == 0


def test_cache_metrics_stay_empty_in_nginx_mode(app: Flask) -> None:
    app.test_client().get("/time")

    text = scrape(app)

    assert sample_sum(text, "cache_requests_total") == 0
    assert sample_sum(text, "redis_errors_total") == 0


def test_scanning_random_paths_and_methods_adds_no_series(app: Flask) -> None:
    client = app.test_client()
    # Create the series a scan can legitimately touch, then count them.
    client.get("/warm-up")
    client.open("/warm-up", method="SCAN")
    client.get("/metrics")
    before = samples(scrape(app)).keys()

    rng = random.Random(1234)
    for _ in range(200):
        tail = "".join(rng.choices(string.ascii_letters + string.digits + "/-._", k=11))
        path = "/" + rng.choice(string.ascii_letters) + tail
        method = rng.choice(["GET", "SCAN", "X-" + rng.choice(string.ascii_uppercase)])
        assert client.open(path, method=method).status_code in {404, 405}

    assert samples(scrape(app)).keys() == before
