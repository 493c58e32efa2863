"""A server a test starts, waited for until its /healthz answers 200, and stopped when the test is
done; and the repo's two services, go_service and py_service (under gunicorn), started so on
loopback ports of their own.

The wait is an event wait (wait_healthy): it ends when the server answers, or at once when the
server stops (a process's exit code and the tail of its stderr); its bound, HEALTH_TIMEOUT_S, sits
far above any start-up, so that a slow machine only makes it wait longer. The image smoke test
waits on its container so too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tools.testing.python.support import free_port, http_request, wait_until

HEALTH_TIMEOUT_S = 120
# How long a server may take to exit on SIGTERM before it gets SIGKILL.
STOP_TIMEOUT_S = 30
# How much of a server's stderr an error quotes.
STDERR_TAIL_LINES = 20


class ServerExitedError(RuntimeError):
    """The server process exited before it answered (not an OSError: wait_until must not retry)."""


def wait_healthy(
    base_url: str,
    alive: Callable[[], None],
    log: Callable[[], str],
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> None:
    """Waits until `base_url`/healthz answers 200. `alive` is called before each request and
    raises (anything but an OSError) once the server has stopped: that ends the wait at once.

    Raises:
        TimeoutError: no 200 within `timeout_s` seconds; the message quotes `log()`.
    """

    def healthy() -> bool:
        alive()
        return http_request(base_url + "/healthz").status == 200

    try:
        wait_until(healthy, timeout_s, interval_s=0.2, what=f"{base_url}/healthz")
    except TimeoutError as error:
        raise TimeoutError(f"{error}; its log ends:\n{log()}") from error


def stderr_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
    return "\n".join(lines) or "(nothing)"


@contextmanager
def serving(
    argv: Sequence[str],
    base_url: str,
    stderr: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> Iterator[str]:
    """Runs `argv` (this process's environment plus `env`, its stderr written to the file
    `stderr`) until the block ends, and enters the block once `base_url`/healthz answers 200.
    Yields `base_url`. The process gets SIGTERM when the block ends, also when it fails, and
    SIGKILL if it has not exited STOP_TIMEOUT_S later.

    Raises:
        ServerExitedError: the process exited before it answered.
        TimeoutError: it did not answer within `timeout_s` seconds.
        Both name the server and quote the end of its stderr.
    """
    with stderr.open("wb") as log:
        process = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stderr=log)
    try:

        def alive() -> None:
            if (code := process.poll()) is not None:
                raise ServerExitedError(
                    f"{argv[0]} exited with {code} before {base_url}/healthz answered; "
                    f"its stderr ends:\n{stderr_tail(stderr)}"
                )

        wait_healthy(base_url, alive, lambda: stderr_tail(stderr), timeout_s)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def go_and_python(
    tmp: Path,
    go_args: Sequence[str] = (),
    go_env: Mapping[str, str] | None = None,
    py_env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """Both services on free loopback ports until the block ends: {"go": base URL, "python": base
    URL}, each answering /healthz when the block is entered.

    The binaries: the environment's GO_SERVICE (//go_service/cmd/go_service) and PY_SERVICE
    (//py_service:server), as a BUILD file's `$(rootpath)` sets them. `go_args` follow the Go
    service's -listen; `py_env` adds to BIND and PROMETHEUS_MULTIPROC_DIR (a new directory in
    `tmp`, which also receives each service's stderr).
    """
    go_port, py_port = free_port(), free_port()
    metrics_dir = tmp / "py-metrics"
    metrics_dir.mkdir()
    with ExitStack() as stack:
        go = stack.enter_context(
            serving(
                [os.environ["GO_SERVICE"], "-listen", f"127.0.0.1:{go_port}", *go_args],
                f"http://127.0.0.1:{go_port}",
                stderr=tmp / "go_service.stderr",
                env=go_env,
            )
        )
        python = stack.enter_context(
            serving(
                [os.environ["PY_SERVICE"]],
                f"http://127.0.0.1:{py_port}",
                stderr=tmp / "py_service.stderr",
                env={
                    "BIND": f"127.0.0.1:{py_port}",
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                    **(py_env or {}),
                },
            )
        )
        yield {"go": go, "python": python}
