"""Nginx's configuration, tested with the real programs on loopback, no Docker needed.

Runs Debian's nginx with its Lua module (the packages the image ships, from @debian_nginx) with
deploy/nginx/nginx.conf and its Lua metrics, in front of the real go_service and py_service
binaries. Only the addresses change: the config's paths and upstreams are rewritten to this test's.
"""

import email.utils
import http.client
import os
import re
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tools.testing.python.support import free_port, http_request, wait_until

# Paths of the programs and files under test, from the BUILD file (env: no shell word splitting).
ARGS = os.environ
TMP = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / "nginx-test"
PY_TTL = 2  # seconds: the app's max-age, which Nginx honours over proxy_cache_valid
CLIENT_HEADER_TIMEOUT = 10  # seconds: nginx.conf


def extract(tars: str, into: Path) -> None:
    for path in tars.split():
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="fully_trusted")


def raw(port: int, data: bytes) -> int:
    """Sends raw bytes, returns the HTTP status Nginx answers with (0: connection closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        head = s.recv(4096).decode(errors="replace")
    match = re.match(r"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


class Upstream:
    """One app process on a fixed loopback port, stoppable and restartable."""

    def __init__(self, argv: list[str], env: dict[str, str], health_url: str) -> None:
        self.argv, self.env, self.health_url = argv, env, health_url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: http_request(self.health_url).status == 200,
            timeout_s=20,
            interval_s=0.2,
            what=self.health_url,
        )

    def stop(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


class Nginx:
    """Nginx with this test's config on loopback ports, in front of one Go and one Python app."""

    def __init__(self) -> None:
        self.nginx: subprocess.Popen | None = None
        self.go: Upstream | None = None
        self.py: Upstream | None = None

    def start(self) -> None:
        root, conf = TMP / "root", TMP / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (TMP / "cache").mkdir(exist_ok=True)  # a tmpfs mount point in the stack
        extract(ARGS["NGINX_TARS"], root)
        self.port, go_port, py_port = free_port(), free_port(), free_port()
        self.variant_port, self.metrics_port = free_port(), free_port()

        # A unix socket's path must be short (108 bytes): not under TEST_TMPDIR.
        fallback = Path(tempfile.mkdtemp(prefix="nginx-test-", dir="/tmp")) / "fallback.sock"
        text = Path(ARGS["NGINX_CONF"]).read_text()
        # /tmp first: the paths substituted after it may themselves lie under /tmp.
        text = (
            text.replace("/tmp/", f"{TMP}/")
            .replace(f"unix:{TMP}/nginx-fallback.sock", f"unix:{fallback}")
            .replace("/etc/nginx/mime.types", str(root / "etc/nginx/mime.types"))
            .replace("/etc/nginx/conf.d/", f"{conf}/")
            .replace("/etc/nginx/lua/", f"{Path(ARGS['NGINX_LUA']).parent}/")
            .replace("/usr/lib/nginx/modules/", f"{root}/usr/lib/nginx/modules/")
            .replace("/usr/share/lua/", f"{root}/usr/share/lua/")
            .replace("/var/cache/nginx", str(TMP / "cache"))
            .replace("listen 8080", f"listen 127.0.0.1:{self.port}")
            .replace("listen 8001", f"listen 127.0.0.1:{self.variant_port}")
            .replace("listen 9145", f"listen 127.0.0.1:{self.metrics_port}")
        )
        (conf / "nginx.conf").write_text(text)
        # The stack's upstreams, with this test's addresses.
        (conf / "upstreams.conf").write_text(
            Path(ARGS["NGINX_UPSTREAMS"])
            .read_text()
            .replace("unix:/tmp/nginx-fallback.sock", f"unix:{fallback}")
            .replace("py-service:8000", f"127.0.0.1:{py_port}")
            # The profiles' apps are absent here: an address nothing listens on.
            .replace("py-service-redis:8000", f"127.0.0.1:{free_port()}")
            .replace("py-service-flask:8000", f"127.0.0.1:{free_port()}")
        )
        # The Go tier with this test's one replica, by address: no DNS to follow here.
        (conf / "go-tier.conf").write_text(
            Path(ARGS["NGINX_GO_TIER"])
            .read_text()
            .replace("unix:/tmp/nginx-fallback.sock", f"unix:{fallback}")
            .replace("go-service:8080 resolve", f"127.0.0.1:{go_port}")
        )
        self.go = Upstream(
            [ARGS["GO_SERVICE"], "-listen", f"127.0.0.1:{go_port}"],
            {},
            f"http://127.0.0.1:{go_port}/healthz",
        )
        self.py = Upstream(
            [ARGS["PY_SERVICE"]],
            {
                "BIND": f"127.0.0.1:{py_port}",
                "CACHE_TTL": str(PY_TTL),
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(TMP / "py-metrics"),
            },
            f"http://127.0.0.1:{py_port}/healthz",
        )
        self.go.start()
        self.py.start()
        libs = root / "usr/lib/x86_64-linux-gnu"
        self.nginx = subprocess.Popen(
            # As root here, Nginx would switch its workers to "nobody"; in the stack it runs
            # unprivileged and has no one to switch to.
            [
                str(root / "usr/sbin/nginx"),
                "-c",
                str(conf / "nginx.conf"),
                "-g",
                "daemon off; user root;",
            ],
            env={**os.environ, "LD_LIBRARY_PATH": str(libs)},
            stdout=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        nginx = self.nginx
        wait_until(
            lambda: nginx.poll() is None and http_request(self.base + "/healthz").status == 200,
            timeout_s=20,
            interval_s=0.2,
            what="nginx's /healthz",
        )

    def stop(self) -> None:
        """Stops what start() started, also after a start that failed half-way."""
        if self.nginx is not None:
            self.nginx.terminate()
            self.nginx.wait(timeout=30)
        for upstream in (self.go, self.py):
            if upstream is not None:
                upstream.stop()

    def stored_entry(self, path: str) -> tuple[bytes, Message]:
        """A response (body, headers) served from the entry Nginx holds for path: a HIT."""
        answers: list[tuple[bytes, Message]] = []

        def hit() -> bool:
            status, headers, body = http_request(self.base + path)
            answers.append((body, headers))
            return status == 200 and headers.get("X-Cache-Status") == "HIT"

        wait_until(hit, PY_TTL + 5, interval_s=0.2, what=f"a HIT for {path}")
        return answers[-1]

    def counts(self) -> dict[tuple[str, ...], float]:
        """Every sample of Nginx's metrics endpoint, keyed by (name, label=value, ...)."""
        response = http_request(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {
            (sample.name, *(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def settled_counts(self) -> dict[tuple[str, ...], float]:
        """counts() once two scrapes 0.2 s apart agree: Nginx counts a request in its log phase,
        after the response is sent, so a client can have its answer before the count moves (the
        previous test's last request, on a busy machine)."""
        scrapes: list[dict[tuple[str, ...], float]] = []

        def settled() -> bool:
            scrapes.append(self.counts())
            return len(scrapes) > 1 and scrapes[-1] == scrapes[-2]

        wait_until(settled, timeout_s=5, interval_s=0.2, what="Nginx's counters to settle")
        return scrapes[-1]


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    server = Nginx()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_python_time_is_cached_and_served_stale_when_the_app_is_down(nginx: Nginx) -> None:
    first, _ = nginx.stored_entry("/python/time")
    status, headers, second = http_request(nginx.base + "/python/time")
    assert (status, headers.get("X-Cache-Status"), second) == (200, "HIT", first)
    time.sleep(PY_TTL + 1)
    nginx.py.stop()
    try:
        status, headers, stale = http_request(nginx.base + "/python/time")
        assert (status, headers.get("X-Cache-Status"), stale) == (200, "STALE", first)
    finally:
        nginx.py.start()
    wait_until(
        lambda: http_request(nginx.base + "/python/time").body != first,
        timeout_s=20,
        interval_s=0.2,
        what="a fresh /python/time once the app is back",
    )


# Behind a port mapping (80 -> 8080 in the stack) an absolute Location would name the container's
# own port; a relative one resolves against whatever URL the client used.
@pytest.mark.parametrize("path", ["/go", "/python"])
@pytest.mark.parametrize("host", ["127.0.0.1", "cache.example.test:8443"])
def test_redirects_nginx_makes_are_relative(nginx: Nginx, path: str, host: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 301
    assert response.getheader("Location") == path + "/"


def test_a_hit_keeps_the_time_its_response_was_made(nginx: Nginx) -> None:
    # RFC 9111 section 4.2.3: a client behind Nginx computes a stored response's age from
    # Date (or Age). Nginx's own Date on a hit would restart max-age at every hit.
    # /python/time's body is the time its value was made: two answers with the same body
    # came from the same stored response, so they must carry the same Date.
    body, first = nginx.stored_entry("/python/time")
    time.sleep(1.2)  # Date has whole seconds
    status, headers, later_body = http_request(nginx.base + "/python/time")
    if later_body != body:  # the entry was replaced meanwhile: once more, on the new one
        body, first = nginx.stored_entry("/python/time")
        time.sleep(1.2)
        status, headers, later_body = http_request(nginx.base + "/python/time")
    assert (status, later_body) == (200, body)
    assert headers.get("X-Cache-Status") in ("HIT", "STALE", "UPDATING")
    assert headers["Date"] == first["Date"]
    made = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert time.time() - made >= 1


def served_by_app(nginx: Nginx, handler: str) -> float:
    """How many requests the Python app answered on a route (its own request counter)."""
    metrics = http_request(nginx.base + "/python/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("handler") == handler
    )


def test_cache_key_holds_neither_query_nor_host(nginx: Nginx) -> None:
    # 12 distinct query strings and Host values: at most one request fills the entry; the
    # app serves no other (its own request counter), so `?random` cannot reach it.
    nginx.stored_entry("/python/static-text")
    before = served_by_app(nginx, "/static-text")
    statuses = []
    for i in range(12):
        response = http_request(
            f"{nginx.base}/python/static-text?x={i}&utm={time.time_ns()}",
            headers={"Host": f"h{i}.example.test"},
        )
        assert response.text == "Hello from py_service.\n"
        statuses.append(response.headers.get("X-Cache-Status"))
    assert served_by_app(nginx, "/static-text") - before <= 1, statuses


def test_uncacheable_python_responses_skip_the_cache_and_its_lock(nginx: Nginx) -> None:
    for path in ("/python/", "/python/missing"):
        _, headers, _ = http_request(nginx.base + path)
        assert headers.get("X-Cache-Status") == "BYPASS", path

    # Concurrent requests for a response that is never stored must not queue behind the
    # cache lock (it waits in 500 ms steps, up to proxy_cache_lock_timeout each). Only a
    # request that looks the cache up takes the lock: 40 at once each skip it (BYPASS) and
    # reach the app.
    def fetch(_: int) -> tuple[int, str | None]:
        status, headers, _ = http_request(nginx.base + "/python/")
        return status, headers.get("X-Cache-Status")

    before = served_by_app(nginx, "/")
    with ThreadPoolExecutor(20) as pool:
        answers = set(pool.map(fetch, range(40)))
    assert answers == {(200, "BYPASS")}
    # The app counts a request once it has answered it.
    wait_until(
        lambda: served_by_app(nginx, "/") - before == 40,
        timeout_s=20,
        interval_s=0.2,
        what="the app to have answered all 40",
    )


def test_python_metrics_and_health_are_never_cached(nginx: Nginx) -> None:
    for path in ("/python/metrics", "/python/healthz", "/python/readyz"):
        for _ in range(2):
            status, headers, _ = http_request(nginx.base + path)
            assert status == 200, path
            assert "X-Cache-Status" not in headers, path


def test_go_is_proxied_uncached_with_prefix_stripped(nginx: Nginx) -> None:
    status, headers, _ = http_request(nginx.base + "/go/static-text")
    assert status == 200
    assert "X-Cache-Status" not in headers
    assert headers.get("X-Cache") in ("HIT", "MISS")  # the Go service's own cache
    assert http_request(nginx.base + "/go/")[0] == 200


def test_go_down_gives_a_short_502_and_recovers_without_reload(nginx: Nginx) -> None:
    nginx.go.stop()
    try:
        for _ in range(3):  # refused at once: the short 502
            response = http_request(nginx.base + "/go/time")
            assert (response.status, response.text) == (
                502,
                "bad gateway: the go service is not answering\n",
            )
    finally:
        nginx.go.start()
    # Nginx tries the app again on the next request, with no reload.
    wait_until(
        lambda: http_request(nginx.base + "/go/time").status == 200,
        timeout_s=20,
        interval_s=0.2,
        what="/go/time once the app is back",
    )


BAD_INPUT = {
    "oversized header": b"GET /go/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    "oversized URI": b"GET /python/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown method": b"BREW /go/time HTTP/1.1\r\nHost: x\r\n\r\n",
    "traversal": b"GET /go/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    "encoded slash": b"GET /python/%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.0 without Host": b"GET /go/time HTTP/1.0\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\r\n\r\n",
}


@pytest.mark.parametrize("data", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_gets_4xx_never_5xx(nginx: Nginx, data: bytes) -> None:
    status = raw(nginx.port, data)
    assert 200 <= status < 500, f"status {status}"


def test_slow_client_is_cut_off(nginx: Nginx) -> None:
    # Nginx closes a connection whose request head never ends once client_header_timeout has
    # passed since it accepted it: not before (less 50 ms for Nginx's millisecond timer), and
    # well before ten times it, when this client would give up itself (socket.timeout).
    started = time.monotonic()
    limit = 10 * CLIENT_HEADER_TIMEOUT
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=limit) as s:
        s.sendall(b"GET /go/time HTTP/1.1\r\nHost: x\r\n")  # and never finishes the headers
        data = s.recv(4096)
    took = time.monotonic() - started
    assert not data.startswith(b"HTTP/1.1 5")
    assert CLIENT_HEADER_TIMEOUT - 0.05 < took < limit, took


def test_metrics_count_every_answered_request_exactly(nginx: Nginx) -> None:
    # What each request must add, by (service, code, cache_status). The health check, the
    # scrape and the fallback's internal request are not traffic and add nothing; a request
    # Nginx rejects itself (bad request line) and its own 404 are counted.
    sent: Counter[tuple[str, str, str]] = Counter()

    def send(path: str, service: str) -> None:
        status, headers, _ = http_request(nginx.base + path)
        sent[(service, str(status), headers.get("X-Cache-Status", "-"))] += 1

    before = nginx.settled_counts()
    http_request(nginx.base + "/healthz")
    for _ in range(3):
        send("/go/time", "go")
        send("/python/time", "python")  # MISS, then HIT
        send("/python/", "python")  # no-store: BYPASS
        send("/no-such-route", "nginx")
    assert raw(nginx.port, b"NONSENSE\r\n\r\n") == 400
    sent[("nginx", "400", "-")] += 1

    after = nginx.settled_counts()
    for (service, code, cache_status), n in sent.items():
        key = (
            "nginx_http_requests_total",
            f"cache_status={cache_status}",
            f"code={code}",
            f"service={service}",
        )
        assert after.get(key, 0) - before.get(key, 0) == n, key
    increase = sum(
        value - before.get(key, 0)
        for key, value in after.items()
        if key[0] == "nginx_http_requests_total"
    )
    assert increase == sum(sent.values()), "a request was counted that was not sent"
    for service in ("go", "python", "nginx"):
        key = ("nginx_http_request_duration_seconds_count", f"service={service}")
        requests = sum(n for (s, _, _), n in sent.items() if s == service)
        assert after.get(key, 0) - before.get(key, 0) == requests, key
    assert after[("nginx_metric_errors_total",)] == 0


def test_metrics_stay_exact_under_concurrent_load(nginx: Nginx) -> None:
    # Many connections at once across both workers: the shared dictionary's increments are
    # atomic, so the count is exact, not eventually close.
    def burst(_: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        for _ in range(100):
            connection.request("GET", "/go/time")
            connection.getresponse().read()
        connection.close()
        return 100

    key = ("nginx_http_requests_total", "cache_status=-", "code=200", "service=go")
    before = nginx.counts().get(key, 0)
    with ThreadPoolExecutor(16) as pool:
        sent = sum(pool.map(burst, range(16)))
    assert nginx.counts()[key] - before == sent
