"""What tests in every area need to talk to the servers they start: a bounded wait, a free loopback
port, and an HTTP request that returns 4xx/5xx answers instead of raising.

Standard library only, so that any test or test-only binary can use it whatever pip hub it
installs its other packages from.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message
from typing import NamedTuple


def wait_until[T](
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.2,
    what: str = "the condition",
    retry_on: tuple[type[BaseException], ...] = (OSError,),
) -> T:
    """Calls `predicate` every `interval_s` seconds until it returns a truthy value, and returns
    that value.

    A call that raises one of `retry_on` counts as "not yet" (by default OSError: a server that is
    still starting refuses connections); any other exception propagates at once. The first call is
    made at once and the last no later than `timeout_s` seconds after the first, so the wait ends
    within `timeout_s` plus one predicate call (bound a blocking predicate by its own timeout).

    Raises:
        TimeoutError: after `timeout_s` seconds without a truthy value; the message names `what`,
            the bound, and the last call's outcome (its exception, or the value it returned).
            TimeoutError is an OSError: a wait nested in another wait's predicate is retried.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = f"it returned {value!r}"
        except retry_on as error:
            last = f"{type(error).__name__}: {error}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last})")
        time.sleep(min(interval_s, remaining))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` (loopback by default) that nothing listens on now, chosen by the
    kernel, for a server a test starts: tests never depend on a fixed port something else may hold.

    The port is free when this returns, not reserved: start the server soon after.
    """
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Response(NamedTuple):
    """An HTTP response: status code, header fields (an email.message.Message, so names are
    case-insensitive as RFC 9110 section 5.1 says, and a missing one is None), and the raw body."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (every server under test here sends UTF-8 text)."""
        return self.body.decode()


def http_request(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> Response:
    """Sends one request without a body (urllib; redirects followed) and returns the response,
    whatever its status: a 4xx or 5xx answer is a Response, not an exception.

    `timeout_s` bounds the connect and each read, in seconds.

    Raises:
        OSError: no response: the connection was refused or reset, or a read timed out
            (urllib.error.URLError and TimeoutError are OSErrors, which wait_until retries).
    """
    request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())
