"""Both services' /metrics speak the vocabulary of api/metrics.json, and label the same traffic
alike. Runs the real binaries on loopback: go_service, and py_service under gunicorn (its
workers' metrics summed, as in the image)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics_vocabulary import load, openapi_routes, problems
from tools.testing.python.services import go_and_python
from tools.testing.python.support import http_request

SPEC = load(Path("api/metrics.json"))
ROUTES = openapi_routes(Path("api/openapi.json"))
# Every route, a HEAD, a wrong method, a method outside every set, an unknown path.
TRAFFIC = [
    *(("GET", path) for path in sorted(ROUTES)),
    ("HEAD", "/time"),
    ("POST", "/time"),
    ("BREW", "/time"),
    ("GET", "/no-such-route"),
]


def fetch(url: str, method: str = "GET") -> tuple[int, str]:
    response = http_request(url, method=method)
    return response.status, response.text


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{"go": base URL, "python": base URL}, both answering."""
    with go_and_python(
        tmp_path_factory.mktemp("services"), py_env={"WEB_CONCURRENCY": "2"}
    ) as urls:
        yield urls


def scrape_after_traffic(url: str) -> str:
    for method, path in TRAFFIC:
        fetch(url + path, method)
    status, text = fetch(url + "/metrics")
    assert status == 200
    return text


@pytest.mark.parametrize("exposer", ["go", "python"])
def test_each_service_speaks_the_vocabulary(services: dict[str, str], exposer: str) -> None:
    text = scrape_after_traffic(services[exposer])
    assert problems(SPEC, text, exposer, ROUTES) == []


def test_both_services_label_the_same_traffic_alike(services: dict[str, str]) -> None:
    # What a dashboard with a service variable relies on: the same request makes the same series,
    # label strings and all (le="5" and le="5.0" are two series to Prometheus).
    def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        return {
            (sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(text)
            if family.name.startswith("http_request")
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    go, python = (series(scrape_after_traffic(services[s])) for s in ("go", "python"))
    assert go == python


@pytest.mark.parametrize(
    ("exposition", "finding"),
    [
        # The Go service's old handler label: the method inside the route.
        (
            'http_requests_total{handler="GET /time",method="GET",code="200"} 1\n',
            "handler='GET /time' is outside its vocabulary",
        ),
        ('http_requests_total{handler="/time",code="200"} 1\n', "labels ['code', 'handler']"),
        ('http_requests_total{handler="/x/y",method="GET",code="200"} 1\n', "handler='/x/y'"),
        ('http_requests_total{handler="/time",method="BREW",code="200"} 1\n', "method='BREW'"),
        ("# TYPE some_metric gauge\nsome_metric 1\n", "some_metric: not in api/metrics.json"),
        ("# TYPE cache_entries counter\ncache_entries_total 1\n", "cache_entries_total"),
        ("# TYPE nginx_metric_errors counter\nnginx_metric_errors_total 0\n", "it is ['nginx']'s"),
        (
            "# TYPE http_request_duration_seconds histogram\n"
            'http_request_duration_seconds_bucket{handler="/",method="GET",le="1.0"} 1\n'
            'http_request_duration_seconds_bucket{handler="/",method="GET",le="+Inf"} 1\n'
            'http_request_duration_seconds_count{handler="/",method="GET"} 1\n'
            'http_request_duration_seconds_sum{handler="/",method="GET"} 0.1\n',
            "http_request_duration_seconds: buckets",
        ),
        # Every bound there, as the float it stands for, but written as prometheus_client writes
        # it: a query on {le="1"} would miss it.
        (
            "# TYPE http_request_duration_seconds histogram\n"
            + "".join(
                f'http_request_duration_seconds_bucket{{handler="/",method="GET",le="{b}"}} 1\n'
                for b in (*(repr(float(b)) for b in SPEC["buckets"]["http"]), "+Inf")
            ),
            "buckets ['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', "
            "'0.025', '0.05', '0.1', '0.25', '0.5', '1.0', '2.5', '5.0', '10.0', '+Inf']",
        ),
        # Nginx's old %.17g: 0.1 as 0.10000000000000001.
        (
            "# TYPE nginx_http_request_duration_seconds histogram\n"
            + "".join(
                f'nginx_http_request_duration_seconds_bucket{{service="go",le="{b}"}} 1\n'
                for b in (*(f"{float(b):.17g}" for b in SPEC["buckets"]["nginx"]), "+Inf")
            ),
            "'0.10000000000000001'",
        ),
        ("", "build_info: required of go, not exposed"),
    ],
)
def test_the_checker_finds_what_breaks_the_vocabulary(exposition: str, finding: str) -> None:
    found = problems(SPEC, exposition, "go", ROUTES)
    assert any(finding in f for f in found), found
