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
import sys
import tarfile
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# Paths of the programs and files under test, from the BUILD file (env: no shell word splitting).
ARGS = os.environ
TMP = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / "nginx-test"
PY_TTL = 2  # seconds: the app's max-age, which Nginx honours over proxy_cache_valid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extract(tars: str, into: Path) -> None:
    for path in tars.split():
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="fully_trusted")


def request(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def raw(port: int, data: bytes) -> int:
    """Sends raw bytes, returns the HTTP status Nginx answers with (0: connection closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        head = s.recv(4096).decode(errors="replace")
    match = re.match(r"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


def wait_until(check, timeout: float = 20) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


class Upstream:
    """One app process on a fixed loopback port, stoppable and restartable."""

    def __init__(self, argv: list[str], env: dict[str, str], health_url: str) -> None:
        self.argv, self.env, self.health_url = argv, env, health_url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: request(self.health_url)[0] == 200)

    def stop(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


class NginxConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        root, conf = TMP / "root", TMP / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (TMP / "cache").mkdir(exist_ok=True)  # a tmpfs mount point in the stack
        extract(ARGS["NGINX_TARS"], root)
        cls.port, go_port, py_port = free_port(), free_port(), free_port()
        cls.variant_port, cls.metrics_port = free_port(), free_port()

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
            .replace("listen 8080", f"listen 127.0.0.1:{cls.port}")
            .replace("listen 8001", f"listen 127.0.0.1:{cls.variant_port}")
            .replace("listen 9145", f"listen 127.0.0.1:{cls.metrics_port}")
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
        cls.go = Upstream(
            [ARGS["GO_SERVICE"], "-listen", f"127.0.0.1:{go_port}"],
            {},
            f"http://127.0.0.1:{go_port}/healthz",
        )
        cls.py = Upstream(
            [ARGS["PY_SERVICE"]],
            {
                "BIND": f"127.0.0.1:{py_port}",
                "CACHE_TTL": str(PY_TTL),
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(TMP / "py-metrics"),
            },
            f"http://127.0.0.1:{py_port}/healthz",
        )
        cls.go.start()
        cls.py.start()
        libs = root / "usr/lib/x86_64-linux-gnu"
        cls.nginx = subprocess.Popen(
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
        cls.base = f"http://127.0.0.1:{cls.port}"
        wait_until(lambda: cls.nginx.poll() is None and request(cls.base + "/healthz")[0] == 200)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.nginx.terminate()
        cls.go.stop()
        cls.py.stop()

    def test_python_time_is_cached_and_served_stale_when_the_app_is_down(self) -> None:
        first, _ = self.stored_entry("/python/time")
        status, headers, second = request(self.base + "/python/time")
        self.assertEqual((status, headers.get("X-Cache-Status"), second), (200, "HIT", first))
        time.sleep(PY_TTL + 1)
        self.py.stop()
        try:
            status, headers, stale = request(self.base + "/python/time")
            self.assertEqual((status, headers.get("X-Cache-Status"), stale), (200, "STALE", first))
        finally:
            self.py.start()
        wait_until(lambda: request(self.base + "/python/time")[2] != first)

    def stored_entry(self, path: str) -> tuple[str, dict]:
        """A response (body, headers) served from the entry Nginx holds for path: a HIT."""
        answers: list[tuple[str, dict]] = []

        def hit() -> bool:
            status, headers, body = request(self.base + path)
            answers.append((body, headers))
            return status == 200 and headers.get("X-Cache-Status") == "HIT"

        wait_until(hit, timeout=PY_TTL + 5)
        return answers[-1]

    def test_redirects_nginx_makes_are_relative(self) -> None:
        # Behind a port mapping (80 -> 8080 in the stack) an absolute Location would name the
        # container's own port; a relative one resolves against whatever URL the client used.
        for path in ("/go", "/python"):
            for host in ("127.0.0.1", "cache.example.test:8443"):
                with self.subTest(path=path, host=host):
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    connection.request("GET", path, headers={"Host": host})
                    response = connection.getresponse()
                    response.read()
                    connection.close()
                    self.assertEqual(response.status, 301)
                    self.assertEqual(response.getheader("Location"), path + "/")

    def test_a_hit_keeps_the_time_its_response_was_made(self) -> None:
        # RFC 9111 section 4.2.3: a client behind Nginx computes a stored response's age from
        # Date (or Age). Nginx's own Date on a hit would restart max-age at every hit.
        # /python/time's body is the time its value was made: two answers with the same body
        # came from the same stored response, so they must carry the same Date.
        body, first = self.stored_entry("/python/time")
        time.sleep(1.2)  # Date has whole seconds
        status, headers, later_body = request(self.base + "/python/time")
        if later_body != body:  # the entry was replaced meanwhile: once more, on the new one
            body, first = self.stored_entry("/python/time")
            time.sleep(1.2)
            status, headers, later_body = request(self.base + "/python/time")
        self.assertEqual((status, later_body), (200, body))
        self.assertIn(headers.get("X-Cache-Status"), ("HIT", "STALE", "UPDATING"))
        self.assertEqual(headers["Date"], first["Date"])
        made = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        self.assertGreaterEqual(time.time() - made, 1)

    def test_cache_key_holds_neither_query_nor_host(self) -> None:
        # 12 distinct query strings and Host values: at most one request fills the entry; the
        # app serves no other (its own request counter), so `?random` cannot reach it.
        def served_by_app() -> float:
            metrics = request(self.base + "/python/metrics")[2]
            pattern = r'http_requests_total\{[^}]*handler="/static-text"[^}]*\} ([0-9.e+]+)'
            return sum(float(value) for value in re.findall(pattern, metrics))

        self.stored_entry("/python/static-text")
        before = served_by_app()
        statuses = []
        for i in range(12):
            _, headers, body = request(
                f"{self.base}/python/static-text?x={i}&utm={time.time_ns()}",
                headers={"Host": f"h{i}.example.test"},
            )
            self.assertEqual(body, "Hello from py_service.\n")
            statuses.append(headers.get("X-Cache-Status"))
        self.assertLessEqual(served_by_app() - before, 1, statuses)

    def test_uncacheable_python_responses_skip_the_cache_and_its_lock(self) -> None:
        for path in ("/python/", "/python/missing"):
            _, headers, _ = request(self.base + path)
            self.assertEqual(headers.get("X-Cache-Status"), "BYPASS", path)
        # Concurrent requests for a response that is never stored must not queue behind the
        # cache lock (it waits in 500 ms steps, up to proxy_cache_lock_timeout each).
        started = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            statuses = set(pool.map(lambda _: request(self.base + "/python/")[0], range(40)))
        self.assertEqual(statuses, {200})
        self.assertLess(time.monotonic() - started, 3)

    def test_python_metrics_and_health_are_never_cached(self) -> None:
        for path in ("/python/metrics", "/python/healthz", "/python/readyz"):
            for _ in range(2):
                status, headers, _ = request(self.base + path)
                self.assertEqual(status, 200, path)
                self.assertNotIn("X-Cache-Status", headers, path)

    def test_go_is_proxied_uncached_with_prefix_stripped(self) -> None:
        status, headers, _ = request(self.base + "/go/static-text")
        self.assertEqual(status, 200)
        self.assertNotIn("X-Cache-Status", headers)
        self.assertIn(headers.get("X-Cache"), ("HIT", "MISS"))  # the Go service's own cache
        self.assertEqual(request(self.base + "/go/")[0], 200)

    def test_go_down_gives_a_short_502_and_recovers_without_reload(self) -> None:
        self.go.stop()
        try:
            for _ in range(3):  # refused at once: the short 502
                status, _, body = request(self.base + "/go/time")
                self.assertEqual(
                    (status, body), (502, "bad gateway: the go service is not answering\n")
                )
        finally:
            self.go.start()
        # Nginx tries the app again on the next request, with no reload.
        wait_until(lambda: request(self.base + "/go/time")[0] == 200)

    def test_bad_input_gets_4xx_never_5xx(self) -> None:
        cases = {
            "oversized header": b"GET /go/ HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * 20000
            + b"\r\n\r\n",
            "oversized URI": b"GET /python/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            "unknown method": b"BREW /go/time HTTP/1.1\r\nHost: x\r\n\r\n",
            "traversal": b"GET /go/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            "encoded slash": b"GET /python/%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.0 without Host": b"GET /go/time HTTP/1.0\r\n\r\n",
            "garbage": b"\x16\x03\x01\x02\x00\r\n\r\n",
        }
        for name, data in cases.items():
            with self.subTest(name):
                status = raw(self.port, data)
                self.assertTrue(200 <= status < 500, f"{name}: status {status}")

    def test_slow_client_is_cut_off(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(b"GET /go/time HTTP/1.1\r\nHost: x\r\n")  # and never finishes the headers
            started = time.monotonic()
            data = s.recv(4096)
        self.assertLess(time.monotonic() - started, 15)
        self.assertFalse(data.startswith(b"HTTP/1.1 5"))

    def counts(self) -> dict[tuple[str, ...], float]:
        """Every sample of Nginx's metrics endpoint, keyed by (name, label=value, ...)."""
        status, headers, body = request(f"http://127.0.0.1:{self.metrics_port}/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return {
            (sample.name, *(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def settled_counts(self) -> dict[tuple[str, ...], float]:
        """counts() once two scrapes 0.2 s apart agree: Nginx counts a request in its log phase,
        after the response is sent, so a client can have its answer before the count moves (the
        previous test's last request, on a busy machine)."""
        last = self.counts()
        for _ in range(25):
            time.sleep(0.2)
            now = self.counts()
            if now == last:
                return now
            last = now
        raise AssertionError("Nginx's counters did not settle within 5 s")

    def test_metrics_count_every_answered_request_exactly(self) -> None:
        # What each request must add, by (service, code, cache_status). The health check, the
        # scrape and the fallback's internal request are not traffic and add nothing; a request
        # Nginx rejects itself (bad request line) and its own 404 are counted.
        sent: Counter[tuple[str, str, str]] = Counter()

        def send(path: str, service: str) -> None:
            status, headers, _ = request(self.base + path)
            sent[(service, str(status), headers.get("X-Cache-Status", "-"))] += 1

        before = self.settled_counts()
        request(self.base + "/healthz")
        for _ in range(3):
            send("/go/time", "go")
            send("/python/time", "python")  # MISS, then HIT
            send("/python/", "python")  # no-store: BYPASS
            send("/no-such-route", "nginx")
        self.assertEqual(raw(self.port, b"NONSENSE\r\n\r\n"), 400)
        sent[("nginx", "400", "-")] += 1

        after = self.settled_counts()
        for (service, code, cache_status), n in sent.items():
            key = (
                "nginx_http_requests_total",
                f"cache_status={cache_status}",
                f"code={code}",
                f"service={service}",
            )
            with self.subTest(key=key):
                self.assertEqual(after.get(key, 0) - before.get(key, 0), n)
        increase = sum(
            value - before.get(key, 0)
            for key, value in after.items()
            if key[0] == "nginx_http_requests_total"
        )
        self.assertEqual(increase, sum(sent.values()), "a request was counted that was not sent")
        for service in ("go", "python", "nginx"):
            key = ("nginx_http_request_duration_seconds_count", f"service={service}")
            with self.subTest(histogram=service):
                requests = sum(n for (s, _, _), n in sent.items() if s == service)
                self.assertEqual(after.get(key, 0) - before.get(key, 0), requests)
        self.assertEqual(after[("nginx_metric_errors_total",)], 0)

    def test_metrics_stay_exact_under_concurrent_load(self) -> None:
        # Many connections at once across both workers: the shared dictionary's increments are
        # atomic, so the count is exact, not eventually close.
        def burst(_: int) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            for _ in range(100):
                connection.request("GET", "/go/time")
                connection.getresponse().read()
            connection.close()
            return 100

        key = ("nginx_http_requests_total", "cache_status=-", "code=200", "service=go")
        before = self.counts().get(key, 0)
        with ThreadPoolExecutor(16) as pool:
            sent = sum(pool.map(burst, range(16)))
        self.assertEqual(self.counts()[key] - before, sent)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
