"""py_service.graceful against workers with gunicorn's ThreadWorker interface and real sockets."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from py_service import graceful
from py_service.graceful import stop_listening_on_sigterm
from py_service.tests.support import child_process_env


@dataclass
class Config:
    backlog: int = 64


@dataclass
class MethodQueue:
    """gthread's method queue: callbacks run later, on the worker's event loop."""

    pending: list[Callable[[], None]] = field(default_factory=list)

    def defer(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def run(self) -> None:
        while self.pending:
            self.pending.pop(0)()


def refuses(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class Worker:
    """The parts of gunicorn's ThreadWorker that the hook uses; accept really accepts."""

    def __init__(self, listener: socket.socket, address: tuple[str, int]) -> None:
        self.sockets = [listener]
        self.address = address
        self.cfg = Config()
        self.method_queue = MethodQueue()
        self.alive = True
        self.accepting = True
        self.accepted: list[socket.socket] = []
        self.refused_when_exit_began: bool | None = None

    def set_accept_enabled(self, enabled: bool) -> None:
        self.accepting = enabled

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()  # on a closed or shut down socket: OSError, as gunicorn's
        self.accepted.append(conn)

    def handle_exit(self, sig: int, frame: Any) -> None:
        # gunicorn's: from here on every answer says "Connection: close".
        self.refused_when_exit_began = refuses(self.address)
        self.alive = False


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    sock.setblocking(False)
    yield sock
    sock.close()


def install_on(worker: Worker, master_listens: bool = False) -> Callable[[int, Any], None]:
    """Installs the hook; master_listens: whether gunicorn's master still holds the socket (it
    closed it first when the whole server stops; it keeps it when only this worker retires)."""
    handlers: dict[int, Callable[[int, Any], None]] = {}
    stop_listening_on_sigterm(
        worker,
        install=lambda sig, handler: handlers.update({sig: handler}),
        parent_listens=lambda _: master_listens,
    )
    return handlers[signal.SIGTERM]


def test_sigterm_takes_what_is_queued_then_stops_listening(listener: socket.socket) -> None:
    address = listener.getsockname()
    worker = Worker(listener, address)
    sigterm = install_on(worker)
    queued = [socket.create_connection(address, timeout=5) for _ in range(3)]

    sigterm(signal.SIGTERM, None)
    assert worker.alive, "the graceful exit began inside the signal handler"
    assert worker.accepting, "stopped listening inside the signal handler, not on the event loop"
    worker.method_queue.run()

    assert not worker.accepting
    assert not worker.alive
    assert len(worker.accepted) == len(queued), "a queued connection was left to be reset"
    assert worker.refused_when_exit_began, "answers said Connection: close while still listening"
    assert listener.fileno() == -1
    assert worker.sockets == []
    assert refuses(address)
    for conn in queued + worker.accepted:
        conn.close()


def test_a_stale_accept_event_after_the_close_is_skipped(listener: socket.socket) -> None:
    # The event loop's batch held the listener's readiness event and the SIGTERM callback: the
    # callback closed the socket, then the batch goes on to the accept. Without the guard the
    # accept raises on the closed socket and gunicorn's worker dies with its connections.
    worker = Worker(listener, listener.getsockname())
    sigterm = install_on(worker)
    sigterm(signal.SIGTERM, None)
    worker.method_queue.run()

    worker.accept(listener)  # no exception
    assert worker.accepted == []


def test_the_first_worker_stops_the_socket_for_all(listener: socket.socket) -> None:
    # Workers share one kernel socket (forked from the master): once one shuts it down at
    # SIGTERM, a connection is refused even though another worker still holds a descriptor,
    # and that worker, woken by the dead socket, lets it go instead of dying on accept.
    address = listener.getsockname()
    shared = socket.socket(fileno=socket.dup(listener.fileno()))
    first, other = Worker(listener, address), Worker(shared, address)
    install_on(other)
    install_on(first)(signal.SIGTERM, None)
    first.method_queue.run()

    assert refuses(address)
    other.accept(shared)  # a readiness event of the shut down socket: EINVAL inside
    assert other.accepted == []
    assert other.sockets == []
    assert shared.fileno() == -1
    assert other.alive, "the other worker stops only at its own SIGTERM"


def test_a_retired_worker_closes_only_its_own_copy(listener: socket.socket) -> None:
    # A reload (HUP) or fewer workers (TTOU) sends SIGTERM to one worker while the master and
    # the other workers go on serving: the socket must keep listening for them.
    address = listener.getsockname()
    master = socket.socket(fileno=socket.dup(listener.fileno()))
    worker = Worker(listener, address)
    install_on(worker, master_listens=True)(signal.SIGTERM, None)
    worker.method_queue.run()

    assert listener.fileno() == -1
    assert not refuses(address), "the server stopped listening because one worker retired"
    master.close()


def test_the_parent_holding_the_socket_is_seen_in_proc() -> None:
    # The real check, against a real parent: this process plays gunicorn's master.
    sock = socket.create_server(("127.0.0.1", 0))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys; from py_service.graceful import _parent_listens as p; "
            f"s = socket.socket(fileno={sock.fileno()}); print(p(s), flush=True); "
            "sys.stdin.readline(); print(p(s), flush=True)",
        ],
        pass_fds=[sock.fileno()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_process_env(),
    )
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline().strip() == "True"
    sock.close()  # the master closes its copy first when it stops
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "False"
    assert child.wait(timeout=30) == 0


def test_accept_still_works_before_the_stop(listener: socket.socket) -> None:
    worker = Worker(listener, listener.getsockname())
    install_on(worker)
    client = socket.create_connection(listener.getsockname(), timeout=5)
    worker.accept(listener)
    assert len(worker.accepted) == 1
    client.close()
    worker.accepted[0].close()


def test_sigterm_while_loading_the_app_stops_listening_at_once(listener: socket.socket) -> None:
    worker = Worker(listener, listener.getsockname())
    worker.alive = False  # gunicorn's handler ran before the hook was installed
    install_on(worker)
    assert listener.fileno() == -1


def test_post_worker_init_installs_the_sigterm_handler(listener: socket.socket) -> None:
    # gunicorn's hook, with the real signal.signal and /proc check: this test's parent does not
    # hold the socket, as gunicorn's master does not once it stops.
    address = listener.getsockname()
    worker = Worker(listener, address)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        graceful.post_worker_init(worker)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    worker.method_queue.run()

    assert not worker.alive
    assert refuses(address)
