"""support's wait, port and request helpers, against a loopback server of this test's own."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from tools.testing.python import support
from tools.testing.python.support import Response, free_port, http_request, wait_until


class FakeTime:
    """Stands in for the `time` module support reads: a clock that only sleep() moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(support, "time", fake)
    return fake


def test_a_wait_that_succeeds_returns_the_predicates_value() -> None:
    calls = iter([0, None, "", {"ready": True}])
    assert wait_until(lambda: next(calls), timeout_s=5, interval_s=0.01) == {"ready": True}


def test_a_wait_that_times_out_says_so_within_its_bound(fake_time: FakeTime) -> None:
    asked_at: list[float] = []

    def never() -> bool:
        asked_at.append(fake_time.now - 1000)
        return False

    with pytest.raises(TimeoutError) as raised:
        wait_until(never, timeout_s=0.3, interval_s=0.1, what="the moon")
    # Asked at once, then every interval, the last time at the bound; no sleep past it.
    assert asked_at == pytest.approx([0, 0.1, 0.2, 0.3])
    assert sum(fake_time.sleeps) == pytest.approx(0.3)
    assert str(raised.value) == (
        "timed out after 0.3 s waiting for the moon (last: it returned False)"
    )


def test_a_long_interval_does_not_stretch_the_bound(fake_time: FakeTime) -> None:
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, timeout_s=0.2, interval_s=10)
    assert fake_time.sleeps == pytest.approx([0.2])


def test_retried_errors_are_not_yet_and_the_last_one_is_named() -> None:
    attempts: list[int] = []

    def refused() -> bool:
        attempts.append(1)
        raise ConnectionRefusedError(f"attempt {len(attempts)}")

    with pytest.raises(TimeoutError) as raised:
        wait_until(refused, timeout_s=0.2, interval_s=0.01, what="a server")
    assert len(attempts) > 2
    assert str(raised.value) == (
        "timed out after 0.2 s waiting for a server "
        f"(last: ConnectionRefusedError: attempt {len(attempts)})"
    )


def test_a_zero_timeout_calls_once() -> None:
    calls: list[int] = []
    with pytest.raises(TimeoutError):
        wait_until(lambda: calls.append(1), timeout_s=0)
    assert calls == [1]


def test_other_errors_propagate_at_once() -> None:
    calls = []

    def exited() -> bool:
        calls.append(1)
        raise AssertionError("the server exited")

    with pytest.raises(AssertionError, match="the server exited"):
        wait_until(exited, timeout_s=5)
    assert calls == [1]


def test_retry_on_chooses_what_counts_as_not_yet() -> None:
    answers = iter([RuntimeError("2 failed"), RuntimeError("1 failed"), "served"])

    def served() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until(served, timeout_s=5, interval_s=0.01, retry_on=(RuntimeError,)) == "served"


def test_free_port_can_be_listened_on() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok: 200, anything else 404; the body names the method and the Accept field, and so does
    X-Method the method."""

    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 404
        body = f"{self.command} {self.headers.get('Accept')} ü".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Method", self.command)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_BREW = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_request_returns_status_headers_and_body(server: str) -> None:
    response = http_request(server + "/ok", headers={"Accept": "text/plain"})
    status, headers, body = response
    assert status == 200
    assert headers["x-method"] == headers["X-Method"] == "GET"  # names are case-insensitive
    assert headers["X-Missing"] is None
    assert body == "GET text/plain ü".encode()
    assert response.text == "GET text/plain ü"


def test_an_error_status_is_a_response_not_an_exception(server: str) -> None:
    response = http_request(server + "/missing", method="BREW")
    assert (response.status, response.headers["X-Method"]) == (404, "BREW")
    assert response.text.startswith("BREW ")


def test_no_server_is_an_oserror() -> None:
    with pytest.raises(OSError):  # noqa: PT011 (any OSError is what callers retry on)
        http_request(f"http://127.0.0.1:{free_port()}/", timeout_s=2)


def test_a_wait_on_a_request_retries_until_the_server_answers() -> None:
    port = free_port()
    httpd: list[http.server.HTTPServer] = []
    refused: list[OSError] = []

    def ask() -> Response:
        try:
            return http_request(f"http://127.0.0.1:{port}/ok")
        except OSError as error:
            # The first refusal starts the server: the next try must find it.
            refused.append(error)
            if not httpd:
                httpd.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler))
                threading.Thread(target=httpd[0].serve_forever, daemon=True).start()
            raise

    try:
        response = wait_until(ask, timeout_s=30, interval_s=0.01)
        assert response.status == 200
        assert len(refused) == 1
    finally:
        if httpd:
            httpd[0].shutdown()
            httpd[0].server_close()
