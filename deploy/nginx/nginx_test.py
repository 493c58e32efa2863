"""Nginx's configuration, tested with the real programs on loopback, no Docker needed.

Runs Debian's nginx with its Lua module (the packages the image ships, from @debian_nginx) with
deploy/nginx/nginx.conf and its Lua code, in front of the real go_service and py_service
binaries. Only the addresses change: the config's paths and upstreams are rewritten to this test's,
its own client (127.0.0.1) is left out of the per-client limits, and it runs two workers (the
shared dictionary's counts are exact across workers). Other loopback addresses (127.0.0.2 ...)
are other clients, limited as every client is.
"""

import email.utils
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics_vocabulary import load, openapi_routes, problems
from py_service.app.go_float import go_float
from tools.testing.python.support import free_port, http_request, wait_until

# Paths of the programs and files under test, from the BUILD file (env: no shell word splitting).
ARGS = os.environ
TMP = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / "nginx-test"
PY_TTL = 2  # seconds: the app's max-age, which Nginx honours over proxy_cache_valid
SPEC = load(Path("api/metrics.json"))
ROUTES = openapi_routes(Path("api/openapi.json"))
CLIENT_HEADER_TIMEOUT = 10  # seconds: nginx.conf


def extract(tars: str, into: Path) -> None:
    for path in tars.split():
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="fully_trusted")


# Test-only locations in the public server. /_test/status: Nginx finalizes the request with
# ?code=, as its own modules do when they refuse one, so every status can be produced on demand.
# /_test/number: the metrics' number formatting of each of ?values= (comma-separated).
TEST_LOCATIONS = """
        location = /_test/status {
            content_by_lua_block { ngx.exit(tonumber(ngx.var.arg_code)) }
        }
        location = /_test/number {
            content_by_lua_block {
                for value in ngx.var.arg_values:gmatch("[^,]+") do
                    ngx.say(require("prometheus").number(tonumber(value)))
                end
            }
        }
"""
# Nginx's internal codes for a bad request (ngx_http_request.h: 494 a header too large, 495-497
# TLS errors), answered as 400: their built-in pages are titled 400.
INTERNAL_CODES = {494: 400, 495: 400, 496: 400, 497: 400}
# A request finalized with 408 gets no answer: Nginx closes the connection (a client that timed
# out is not written to; ngx_http_finalize_request), whatever error_page says.
UNANSWERED = {408}


def nginx_status_pages(tars: str) -> list[int]:
    """The statuses Nginx answers with a page of its own: the titles of the pages compiled into
    its binary ("<title>501 Not Implemented</title>"), read from the package under test, so a
    newer Nginx with another page fails the tests rather than slipping through."""
    for path in tars.split():
        with tarfile.open(path) as archive:
            try:
                binary = archive.extractfile("./usr/sbin/nginx")
            except KeyError:
                continue
            assert binary is not None
            return sorted({int(code) for code in re.findall(rb"<title>(\d{3}) ", binary.read())})
    raise FileNotFoundError(f"usr/sbin/nginx in none of {tars}")


def raw_response(port: int, data: bytes) -> tuple[int, Message, bytes]:
    """Sends raw bytes, returns Nginx's answer: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        response = http.client.HTTPResponse(s)
        response.begin()
        return response.status, response.msg, response.read()


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
        self.url = health_url.removesuffix("/healthz")
        self.port = int(self.url.rpartition(":")[2])
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: http_request(self.health_url).status == 200,
            timeout_s=120,
            interval_s=0.2,
            what=self.health_url,
        )

    def stop(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


class Nginx:
    """Nginx with this test's config on loopback ports, in front of one Go and one Python app
    whose responses Nginx may keep for py_ttl seconds; its files under TMP / name."""

    def __init__(self, name: str = "module", py_ttl: int = PY_TTL) -> None:
        self.tmp, self.py_ttl = TMP / name, py_ttl
        self.cache = self.tmp / "cache"
        self.nginx: subprocess.Popen | None = None
        self.go: Upstream | None = None
        self.py: Upstream | None = None
        self.stdout_path = TMP / "nginx.stdout"

    def start(self) -> None:
        root, conf = self.tmp / "root", self.tmp / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(exist_ok=True)  # a tmpfs mount point in the stack
        extract(ARGS["NGINX_TARS"], root)
        self.port, go_port, py_port = free_port(), free_port(), free_port()
        self.variant_port, self.metrics_port = free_port(), free_port()

        # A unix socket's path must be short (108 bytes): not under TEST_TMPDIR.
        fallback = Path(tempfile.mkdtemp(prefix="nginx-test-", dir="/tmp")) / "fallback.sock"
        text = Path(ARGS["NGINX_CONF"]).read_text()
        # /tmp first: the paths substituted after it may themselves lie under /tmp.
        text = (
            text.replace("/tmp/", f"{self.tmp}/")
            .replace(f"unix:{self.tmp}/nginx-fallback.sock", f"unix:{fallback}")
            .replace("/etc/nginx/mime.types", str(root / "etc/nginx/mime.types"))
            .replace("/etc/nginx/conf.d/", f"{conf}/")
            # The product's image has no benchmark routes: an empty directory.
            .replace("/etc/nginx/bench.d/", f"{self.tmp}/bench.d/")
            .replace("/etc/nginx/lua/", f"{Path(ARGS['NGINX_LUA']).parent}/")
            .replace("/usr/lib/nginx/modules/", f"{root}/usr/lib/nginx/modules/")
            .replace("/usr/share/lua/", f"{root}/usr/share/lua/")
            .replace("/var/cache/nginx", str(self.cache))
            .replace("listen 8080", f"listen 127.0.0.1:{self.port}")
            .replace("listen 8001", f"listen 127.0.0.1:{self.variant_port}")
            .replace("listen 9145", f"listen 127.0.0.1:{self.metrics_port}")
            .replace("        server_name _;\n", "        server_name _;\n" + TEST_LOCATIONS, 1)
        )
        assert TEST_LOCATIONS in text, "the public server's `server_name _;` line moved"
        assert "worker_processes 1;" in text
        (conf / "nginx.conf").write_text(text.replace("worker_processes 1;", "worker_processes 2;"))
        # The tests' own client sends bursts far past a client's limits; 127.0.0.2... do not.
        (conf / "unlimited-clients.conf").write_text("127.0.0.1 1;\n")
        # The stack's upstreams, with this test's addresses.
        (conf / "upstreams.conf").write_text(
            Path(ARGS["NGINX_UPSTREAMS"])
            .read_text()
            .replace("unix:/tmp/nginx-fallback.sock", f"unix:{fallback}")
            .replace("py-service:8000", f"127.0.0.1:{py_port}")
            # The profiles' apps are absent here: an address nothing listens on.
            .replace("py-service-redis:8000", f"127.0.0.1:{free_port()}")
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
                "CACHE_TTL": str(self.py_ttl),
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "py-metrics"),
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
            # Its access log and the alert notifications (/dev/stdout in the config).
            stdout=self.stdout_path.open("wb"),
        )
        self.base = f"http://127.0.0.1:{self.port}"
        nginx = self.nginx
        wait_until(
            lambda: nginx.poll() is None and http_request(self.base + "/healthz").status == 200,
            timeout_s=120,
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

        wait_until(hit, self.py_ttl + 5, interval_s=0.2, what=f"a HIT for {path}")
        return answers[-1]

    def python_requests(self, handler: str) -> float:
        """Requests the Python app answered for a route, by its own counter (read from the app,
        not through Nginx): each one a request that reached it, a cache fill for a cached route."""
        metrics = http_request(self.py.url + "/metrics").text
        pattern = rf'http_requests_total\{{[^}}]*handler="{re.escape(handler)}"[^}}]*\}} (\S+)'
        return sum(float(value) for value in re.findall(pattern, metrics))

    def cache_entries(self) -> int:
        """Responses Nginx's cache holds: one file each."""
        return sum(1 for path in self.cache.rglob("*") if path.is_file())

    def memory(self) -> dict[str, int]:
        """Nginx's resident memory (master and workers, kB) and its cache's bytes, which are
        memory too in the stack (a tmpfs)."""
        assert self.nginx is not None
        pids = [self.nginx.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError):  # a process that ended meanwhile
                if int(stat.read_text().rpartition(")")[2].split()[1]) == self.nginx.pid:
                    pids.append(int(stat.parent.name))
        rss = 0
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
        cached = sum(path.stat().st_size for path in self.cache.rglob("*") if path.is_file())
        return {"rss_kb": rss, "cache_bytes": cached}

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

        wait_until(settled, timeout_s=60, interval_s=0.2, what="Nginx's counters to settle")
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
        timeout_s=120,
        interval_s=0.2,
        what="a fresh /python/time once the app is back",
    )


# Behind a port mapping (80 -> 8080 in the stack) an absolute Location would name the container's
# own port; a relative one resolves against whatever URL the client used.
@pytest.mark.parametrize("path", ["/go", "/python"])
@pytest.mark.parametrize("host", ["127.0.0.1", "cache.example.test:8443"])
def test_redirects_nginx_makes_are_relative(nginx: Nginx, path: str, host: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
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
        timeout_s=120,
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
        timeout_s=120,
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
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
        for _ in range(100):
            connection.request("GET", "/go/time")
            connection.getresponse().read()
        connection.close()
        return 100

    key = ("nginx_http_requests_total", "cache_status=-", "code=200", "service=go")
    before = nginx.counts().get(key, 0)
    with ThreadPoolExecutor(16) as pool:
        sent = sum(pool.map(burst, range(16)))
    # Settled: a client has its answer before Nginx's log phase counts it.
    assert nginx.settled_counts()[key] - before == sent


def assert_plain_text(status: int, headers: Message, body: bytes, want: int) -> None:
    assert status == want
    assert headers["Content-Type"] == "text/plain; charset=utf-8", (status, body)
    # One short line, not Nginx's HTML page.
    assert body.endswith(b"\n"), body
    assert body.count(b"\n") == 1, body
    assert b"<" not in body, body


@pytest.mark.parametrize("code", [*nginx_status_pages(ARGS["NGINX_TARS"]), *INTERNAL_CODES])
def test_every_status_nginx_answers_by_itself_is_plain_text(nginx: Nginx, code: int) -> None:
    request = f"GET /_test/status?code={code} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    if code in UNANSWERED:
        with pytest.raises(http.client.RemoteDisconnected):
            raw_response(nginx.port, request.encode())
        return
    status, headers, body = raw_response(nginx.port, request.encode())
    assert_plain_text(status, headers, body, INTERNAL_CODES.get(code, code))
    assert body != f"error {code}\n".encode(), "no text for this status in $status_text"


# Requests that make Nginx refuse them itself, before or instead of any app: the status each gets.
REFUSED = {
    "Transfer-Encoding: gzip": (
        b"GET /go/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    "Transfer-Encoding with a control byte": (
        b"GET /go/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x01\r\n\r\n",
        501,
    ),
    "HTTP/2.0 request line": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "TRACE": (b"TRACE /go/ HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "an internal location": (b"GET /_error/ HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "oversized header": (BAD_INPUT["oversized header"], 400),
    "oversized URI": (BAD_INPUT["oversized URI"], 414),
    "oversized body": (b"POST /go/ HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n", 413),
    "garbage": (BAD_INPUT["garbage"], 400),
}


@pytest.mark.parametrize(("data", "status"), REFUSED.values(), ids=REFUSED.keys())
def test_requests_nginx_refuses_get_plain_text(nginx: Nginx, data: bytes, status: int) -> None:
    answer = raw_response(nginx.port, data)
    assert_plain_text(*answer, want=status)


def test_a_redirect_keeps_its_location_with_the_plain_text_body(nginx: Nginx) -> None:
    status, headers, body = raw_response(nginx.port, b"GET /go HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, headers["Location"], body) == (301, "/go/", b"moved permanently\n")


def test_a_precondition_on_a_cached_response_fails_in_plain_text(nginx: Nginx) -> None:
    # Nginx checks If-Match itself on a response it serves from its cache.
    nginx.stored_entry("/python/static-text")
    request = b'GET /python/static-text HTTP/1.1\r\nHost: x\r\nIf-Match: "nope"\r\n\r\n'
    assert_plain_text(*raw_response(nginx.port, request), want=412)


def test_nginx_metrics_speak_the_vocabulary(nginx: Nginx) -> None:
    for path in ("/go/time", "/python/time", "/no-such-route"):
        http_request(nginx.base + path)
    text = http_request(f"http://127.0.0.1:{nginx.metrics_port}/metrics").text
    assert problems(SPEC, text, "nginx", ROUTES) == []
    # The bounds as the strings a query selects them by: {le="0.1"}, not 0.10000000000000001.
    bounds = re.findall(
        r'nginx_http_request_duration_seconds_bucket\{service="go",le="([^"]*)"', text
    )
    assert bounds == [*SPEC["buckets"]["nginx"], "+Inf"]


def test_nginx_writes_numbers_as_the_python_service_does(nginx: Nginx) -> None:
    # Both write Go's strconv.FormatFloat(v, 'g', -1, 64) (py_service's tests hold go_float to
    # Go's own output): the same bound is the same le string fleet-wide. Edge cases, then 300
    # values over 30 orders of magnitude and 100 over the whole range of doubles.
    rng = random.Random(28)
    values = [
        *(0.0, 1.0, 10.0, 2.5, 0.0005, 0.0001, 1e-05, 2.5e-05, 100000.0, 123456.7, 1e6),
        *(1234567.0, 1e100, 0.1 + 0.2, -0.5, 1.7976931348623157e308, float("inf")),
        # Subnormals (fewer digits than 15 hold them), the smallest normal, a tie at the 16th
        # digit (Go rounds it to even), shortest forms that carry, integers past 2**53.
        *(5e-324, 2.5e-320, 1.5e-310, 2.2250738585072014e-308, 709352321340990.25),
        *(1e23, 9.999999999999999e22, 9007199254740993.0, 2.0**60 + 2**9, 0.000123),
        *(rng.uniform(-1, 1) * 10 ** rng.randint(-15, 15) for _ in range(300)),
        *(rng.uniform(1, 10) * 10.0 ** rng.randint(-300, 300) for _ in range(100)),
    ]
    written: list[str] = []
    for start in range(0, len(values), 100):  # a URI of at most 8 KB
        chunk = values[start : start + 100]
        query = ",".join(repr(value).replace("inf", "1e999") for value in chunk)
        written += http_request(f"{nginx.base}/_test/number?values={query}").text.splitlines()
    assert written == [go_float(value) for value in values]


# ServiceDown's expression as Prometheus links it in each alert.
GENERATOR_URL = (
    "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0+or+label_replace%28absent%28up%7Bjob%3D"
    "%22go-service%22%7D%29%2C+%22instance%22%2C+%22any+replica%22%2C+%22%22%2C+%22%22%29&g0.tab=1"
)


def alert_notification(alerts: int, marker: str) -> dict:
    """Alertmanager's webhook JSON (version 4) for a group of ServiceDown alerts, one per Go
    replica, annotated as the stack's rules annotate them; marker tells this test's apart."""
    instances = [f"10.213.0.{10 + i}:8080" for i in range(alerts)]
    common = {"alertname": "ServiceDown", "job": "go-service", "severity": "critical"}
    return {
        "receiver": "webhook",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {**common, "instance": instance},
                "annotations": {
                    "summary": "go-service is down",
                    "description": f"Prometheus has not scraped {instance} (go-service) for 30 s."
                    ' Quoted: "\\d", non-ASCII: é ☃, a newline:\nend.',
                },
                "startsAt": "2026-12-07T10:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": f"{i:016x}",
            }
            for i, instance in enumerate(instances)
        ],
        "groupLabels": {"alertname": "ServiceDown", "job": "go-service"},
        "commonLabels": common,
        "commonAnnotations": {"summary": "go-service is down"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="ServiceDown", job="go-service", marker="{marker}"}}',
        "truncatedAlerts": 0,
    }


def post_alert(
    nginx: Nginx, body: bytes, connection: http.client.HTTPConnection | None = None
) -> tuple[int, str]:
    """POSTs body to the alert receiver as Alertmanager does; returns the status and the text."""
    connection = connection or http.client.HTTPConnection(
        "127.0.0.1", nginx.metrics_port, timeout=15
    )
    connection.request("POST", "/alerts", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read().decode()


def logged_notifications(nginx: Nginx) -> list[dict]:
    """The notifications on Nginx's stdout so far, each whole line parsed as JSON (a 1 MB line
    may be read while Nginx is still writing it: its part is left for the next look)."""
    written = nginx.stdout_path.read_bytes()
    lines = written[: written.rfind(b"\n") + 1].splitlines()
    records = [json.loads(line) for line in lines if b'"message":"alert notification"' in line]
    return [record["notification"] for record in records]


def wait_logged(nginx: Nginx, notification: dict) -> None:
    # The access log is flushed within a second (buffer=32k flush=1s).
    wait_until(
        lambda: notification in logged_notifications(nginx),
        timeout_s=60,
        interval_s=0.2,
        what=f"notification {notification['groupKey']} on Nginx's stdout",
    )


# A notification as Alertmanager sends it (compact JSON and a newline), and laid out on lines.
@pytest.mark.parametrize("layout", ["compact", "indented"])
@pytest.mark.parametrize("alerts", [1, 3, 5])
def test_alert_notifications_reach_the_log_whole(nginx: Nginx, alerts: int, layout: str) -> None:
    sent = alert_notification(alerts, marker=f"whole-{alerts}-{layout}")
    body = (
        json.dumps(sent, indent=2) if layout == "indented" else json.dumps(sent) + "\n"
    ).encode()
    # Three alerts or more are over the 2,048 bytes Nginx's error log cuts a line at.
    assert (len(body) > 2048) == (alerts >= 3)
    assert post_alert(nginx, body) == (200, "logged\n")
    wait_logged(nginx, sent)


def test_an_alert_notification_up_to_1_mb_is_logged_a_larger_one_refused(nginx: Nginx) -> None:
    limit = 1024 * 1024  # client_max_body_size of /alerts
    sent = alert_notification(600, marker="1 MB")
    sent["commonAnnotations"]["padding"] = ""
    sent["commonAnnotations"]["padding"] = "x" * (limit - len(json.dumps(sent).encode()))
    body = json.dumps(sent).encode()
    assert len(body) == limit
    assert post_alert(nginx, body) == (200, "logged\n")
    wait_logged(nginx, sent)
    # A byte more: refused with a status Alertmanager reports (4xx: a failed notification), on
    # the length alone. (Sending the body too could meet the connection closed by the 413.)
    request = b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
    status, _, text = raw_response(nginx.metrics_port, request)
    assert (status, text) == (413, b"not logged: a notification of more than 1 MB\n")


def test_a_body_that_is_not_json_is_refused_and_not_logged(nginx: Nginx) -> None:
    three = json.dumps(alert_notification(3, marker="cut")).encode()
    bad = {
        # What the old receiver logged: the first 2,047 bytes, cut inside a string.
        three[:2047]: f"unterminated string at byte {three[:2047].rindex(b'"') + 1}",
        b"": "not a JSON object at byte 1",
        b"alert!": "not a JSON object at byte 1",
        b'["an", "array"]': "not a JSON object at byte 1",
        b'{"a": 1} {"b": 2}': "text after the object at byte 10",
        b'{"a": "line\nbreak"}': "control character in a string at byte 7",
        b'{"a": "\\x"}': "bad escape in a string at byte 7",
        b'{"a": 01}': "expected ',' or '}' at byte 8",
        b'{"a": tru}': "expected a value at byte 7",
        b'{"a" 1}': "expected ':' at byte 6",
        b'{"a": ' + b"[" * 40: "nested too deep at byte 38",
    }
    before = len(logged_notifications(nginx))
    connection = http.client.HTTPConnection("127.0.0.1", nginx.metrics_port, timeout=15)
    for body, why in bad.items():
        assert post_alert(nginx, body, connection) == (400, f"not logged: {why}\n"), body[:40]
    # On the same connection, so the same worker: had a refused one been logged, it would be in
    # the log before this one.
    marker = alert_notification(1, marker="after the refused")
    assert post_alert(nginx, json.dumps(marker).encode(), connection)[0] == 200
    wait_logged(nginx, marker)
    assert logged_notifications(nginx)[before:] == [marker]


# --- The public edge (deploy/README.md, "The public edge") ------------------------------------


class Client:
    """One keep-alive connection to Nginx's public port from a loopback address of its own:
    Nginx tells clients apart by their address, and every 127.x.y.z is this machine's."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port, self.source = port, source
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=30, source_address=(self.source, 0)
        )

    def get(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, Message, bytes]:
        """GET with these header fields, in order (a name may repeat). A connection the server
        closed (after an error answer, say) is opened again for the next request."""
        try:
            self.connection.putrequest("GET", path, skip_accept_encoding=True)
            for name, value in headers:
                self.connection.putheader(name, value)
            self.connection.endheaders()
            response = self.connection.getresponse()
            return response.status, response.msg, response.read()
        except (http.client.HTTPException, ConnectionError):
            self.close()
            self.connection = self._connect()
            raise

    def close(self) -> None:
        self.connection.close()


def media_type(headers: Message) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip()


@pytest.fixture(scope="module")
def long_ttl() -> Iterator[Nginx]:
    """An Nginx of its own whose Python responses stay fresh for the whole module (10 min), in
    front of apps of its own: what it stores, and how often the app fills it, is exact."""
    server = Nginx(name="long-ttl", py_ttl=600)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "path", ["/bench/ceiling", "/bench/python-uncached/time", "/bench/flask-run/time"]
)
def test_benchmark_routes_are_not_public(nginx: Nginx, path: str) -> None:
    # Only the benchmark's own image has them (tools/dev/bench/nginx).
    assert http_request(nginx.base + path).status == 404


def test_status_is_on_the_metrics_port_only(nginx: Nginx) -> None:
    assert http_request(nginx.base + "/nginx_status").status == 404
    status = http_request(f"http://127.0.0.1:{nginx.metrics_port}/nginx_status")
    assert status.status == 200
    assert status.text.startswith("Active connections:")


def contract_accept_cases() -> list[str | None]:
    contract = json.loads(Path(ARGS["OPENAPI"]).read_text())
    return [case["accept"] for case in contract["x-common"]["content-negotiation"]["cases"]]


def generated_accept_values(count: int) -> list[str]:
    """Accept values made of the grammar's corners (wildcards, case, q-values valid and not,
    parameters, quoted commas, empty elements), the same on every run."""
    rng = random.Random(29)
    ranges = ["text/plain", "application/json", "text/*", "application/*", "*/*", "TEXT/Plain"]
    ranges += ["Application/JSON", "image/png", "*/json", "text", "text/plain/x", "", " "]
    weights = ["", ";q=0", ";q=1", ";q=0.5", ";q=0.50", ";q=0.001", ";q=1.000", ";q=0.0001"]
    weights += [";q=.5", ";q=1.5", ";Q=0.3", ";q=", ';q="0.5"', " ; q=0.7", ";q=0.7;x=1"]
    weights += [";charset=utf-8", ';a="b,c"', ";level=1;q=0.9", ";;q=0.2", ";q=0.2;", ";q=1."]
    separators = [",", ", ", " ,\t", ",,"]
    return [
        rng.choice(separators).join(
            rng.choice(ranges) + rng.choice(weights) for _ in range(rng.randint(1, 4))
        )
        for _ in range(count)
    ]


def test_nginx_reduces_accept_to_what_both_apps_choose(nginx: Nginx) -> None:
    # Nginx sends the app the representation its own reading of Accept chose: where it reads
    # a value otherwise than the apps do, the answer through Nginx has another type than the
    # app's own answer to the same value. Every case of the contract, generated ones, and
    # several Accept fields in one request (one list, RFC 9110 section 5.3).
    cases: list[list[tuple[str, str]]] = [
        [] if accept is None else [("Accept", accept)] for accept in contract_accept_cases()
    ]
    cases += [[("Accept", accept)] for accept in generated_accept_values(200)]
    cases += [
        [("Accept", "text/plain;q=0.2"), ("Accept", "application/json;q=0.5")],
        [("Accept", "application/json;q=0.5"), ("Accept", "")],
        [("Accept", "*/*;q=0.1"), ("Accept", "text/*;q=0"), ("Accept", "application/*")],
    ]
    apps = {"go": Client(nginx.go.port), "python": Client(nginx.py.port)}
    edge = Client(nginx.port)
    disagreements = []
    try:
        for headers in cases:
            for service, direct in apps.items():
                _, app_headers, _ = direct.get("/static-text", headers)
                status, edge_headers, _ = edge.get(f"/{service}/static-text", headers)
                assert status == 200, (service, headers)
                assert edge_headers.get("Vary") == "Accept", (service, headers)
                if media_type(edge_headers) != media_type(app_headers):
                    disagreements.append(
                        (service, headers, media_type(app_headers), media_type(edge_headers))
                    )
    finally:
        edge.close()
        for direct in apps.values():
            direct.close()
    assert disagreements == []


def test_made_up_accept_values_cost_one_fill_per_representation(long_ttl: Nginx) -> None:
    # Thousands of distinct Accept values, as one client sends them in seconds: before, every
    # one was an entry of its own and a request to the app (issue 29: 2,000 of 2,000). Nginx's
    # memory is read after a warm-up with one spelling per representation, so that it shows
    # what the made-up values add, not a cold worker's first allocations.
    def send(accepts: list[str], representation: str) -> None:
        def worker(start: int) -> set[str]:
            client, types = Client(long_ttl.port), set()
            try:
                for accept in accepts[start::4]:
                    status, headers, _ = client.get("/python/time", [("Accept", accept)])
                    assert status == 200
                    types.add(media_type(headers))
            finally:
                client.close()
            return types

        before = long_ttl.python_requests("/time")
        with ThreadPoolExecutor(4) as pool:
            assert set().union(*pool.map(worker, range(4))) == {representation}
        fills[representation] += long_ttl.python_requests("/time") - before

    representations, per_representation = ("text/plain", "application/json"), 1500
    fills = dict.fromkeys(representations, 0.0)
    for representation in representations:
        send([representation] * 200, representation)
    entries, memory = long_ttl.cache_entries(), long_ttl.memory()
    for representation in representations:
        made_up = [
            f"{representation}, x-made-up/{i};q=0.{i % 1000:03d}" for i in range(per_representation)
        ]
        send(made_up, representation)
    after = long_ttl.memory()
    print(
        f"{len(representations) * per_representation} distinct Accept values: app fills "
        f"{fills}; cache entries {entries} -> {long_ttl.cache_entries()}; "
        f"Nginx {memory} -> {after}"
    )
    assert all(n <= 1 for n in fills.values()), fills
    assert long_ttl.cache_entries() == entries <= len(representations)
    assert after["cache_bytes"] == memory["cache_bytes"]


@pytest.mark.parametrize(
    ("header", "accept"),
    [("Authorization", "application/json"), ("Cookie", "text/plain")],
)
def test_credentialed_requests_neither_read_nor_fill_the_cache(
    long_ttl: Nginx, header: str, accept: str
) -> None:
    # RFC 9111 section 3.5. Each case has an entry no other test touches (route and
    # representation), so "not stored" shows as the first uncredentialed request's MISS.
    credentials = {"Authorization": "Bearer t0ken", "Cookie": "session=s3cret"}[header]
    client = Client(long_ttl.port)
    try:

        def get(*extra: tuple[str, str]) -> str | None:
            status, headers, _ = client.get("/python/static-text", [("Accept", accept), *extra])
            assert (status, media_type(headers)) == (200, accept)
            return headers.get("X-Cache-Status")

        before = long_ttl.python_requests("/static-text")
        assert [get((header, credentials)) for _ in range(2)] == ["BYPASS", "BYPASS"]
        assert long_ttl.python_requests("/static-text") - before == 2  # both went to the app
        assert [get(), get()] == ["MISS", "HIT"]  # nothing was stored for them
        assert get((header, credentials)) == "BYPASS"  # nor is the stored entry given to them
    finally:
        client.close()


def test_a_client_over_its_connection_limit_gets_429_while_another_is_served(
    nginx: Nginx,
) -> None:
    # 10 requests of 127.0.0.4 held in progress: each sent its header and promised a body of 100
    # bytes that comes a byte every 2 s, so Nginx keeps reading it (client_body_timeout is 10 s
    # between reads). Once Nginx has them all, its next request is refused at once (asked until
    # then: they arrive on connections of their own); another client's, and the unlimited test
    # client's, are not.
    key = ("nginx_http_requests_total", "cache_status=-", "code=429", "service=go")
    before = nginx.settled_counts().get(key, 0)
    with ExitStack() as held:
        sockets = []
        for _ in range(10):
            s = held.enter_context(
                socket.create_connection(
                    ("127.0.0.1", nginx.port), timeout=30, source_address=("127.0.0.4", 0)
                )
            )
            s.sendall(b"POST /go/time HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            sockets.append(s)
        over, other = Client(nginx.port, "127.0.0.4"), Client(nginx.port, "127.0.0.5")
        trickled = time.monotonic()

        def refused() -> Any:
            nonlocal trickled
            if time.monotonic() - trickled > 2:
                for s in sockets:
                    s.sendall(b"x")
                trickled = time.monotonic()
            answer = over.get("/go/time")
            return answer[0] == 429 and answer

        try:
            # Bounded by the body: 99 bytes, one every 2 s, keep them in progress for over 3 min.
            _, headers, body = wait_until(
                refused, timeout_s=120, what="127.0.0.4's 11th request in progress refused"
            )
            assert (body, headers.get("Retry-After")) == (b"too many requests\n", "1")
            assert other.get("/go/time")[0] == 200
            assert http_request(nginx.base + "/go/time").status == 200
        finally:
            over.close()
            other.close()
    assert nginx.settled_counts().get(key, 0) - before == 1  # counted under its service


def test_a_client_over_its_request_rate_gets_429_while_another_is_served(nginx: Nginx) -> None:
    # 100 requests a second with bursts of 200: 127.0.0.2 on 8 connections (fewer than its 10
    # in progress) sends until it is refused, within 20,000 requests and 60 s, far more than
    # the limit lets through in that time. Then another client is served at once.
    deadline, refused = time.monotonic() + 60, []

    def send(_: int) -> Counter[int]:
        client, statuses = Client(nginx.port, "127.0.0.2"), Counter[int]()
        try:
            for _ in range(2500):
                if refused or time.monotonic() > deadline:
                    break
                status = client.get("/go/time")[0]
                statuses[status] += 1
                if status == 429:
                    refused.append(status)
        finally:
            client.close()
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = sum(pool.map(send, range(8)), Counter[int]())
    assert refused, statuses
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] >= 200  # the burst went through
    other = Client(nginx.port, "127.0.0.3")
    try:
        assert other.get("/go/time")[0] == 200
    finally:
        other.close()


def test_metrics_label_a_request_by_its_normalised_path(nginx: Nginx) -> None:
    # /go/../python/time is /python/time: the Python location answers it, and it is counted as
    # Python's, not as the Go service's its raw request line starts with.
    def served(counts: dict[tuple[str, ...], float], service: str) -> float:
        return sum(
            value
            for key, value in counts.items()
            if key[0] == "nginx_http_requests_total" and f"service={service}" in key
        )

    before = nginx.settled_counts()
    assert raw(nginx.port, b"GET /go/../python/time HTTP/1.1\r\nHost: x\r\n\r\n") == 200
    after = nginx.settled_counts()
    assert (served(after, "python") - served(before, "python")) == 1
    assert (served(after, "go") - served(before, "go")) == 0
