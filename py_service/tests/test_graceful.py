"""py_service.graceful against a worker with gunicorn's ThreadWorker interface and real sockets."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from py_service.graceful import stop_listening_on_sigterm


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


class Worker:
    """The parts of gunicorn's ThreadWorker that the hook uses; accept really accepts."""

    def __init__(self, listener: socket.socket) -> None:
        self.sockets = [listener]
        self.cfg = Config()
        self.method_queue = MethodQueue()
        self.alive = True
        self.accepting = True
        self.accepted: list[socket.socket] = []

    def set_accept_enabled(self, enabled: bool) -> None:
        self.accepting = enabled

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()  # on a closed socket: OSError, as gunicorn's dies
        self.accepted.append(conn)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    sock.setblocking(False)
    yield sock
    sock.close()


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=5)


def install_on(worker: Worker) -> Callable[[int, Any], None]:
    handlers: dict[int, Callable[[int, Any], None]] = {}
    stop_listening_on_sigterm(worker, install=lambda sig, handler: handlers.update({sig: handler}))
    return handlers[signal.SIGTERM]


def test_sigterm_takes_what_is_queued_then_closes(listener: socket.socket) -> None:
    address = listener.getsockname()
    worker = Worker(listener)
    sigterm = install_on(worker)
    queued = [connect(address) for _ in range(3)]  # handshakes done, not yet accepted

    sigterm(signal.SIGTERM, None)
    assert not worker.alive
    assert worker.accepting, "stopped listening inside the signal handler, not on the event loop"
    worker.method_queue.run()

    assert not worker.accepting
    assert len(worker.accepted) == len(queued), "a queued connection was left to be reset"
    assert listener.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        connect(address)
    for conn in queued + worker.accepted:
        conn.close()


def test_a_stale_accept_event_after_the_close_is_skipped(listener: socket.socket) -> None:
    # The event loop's batch held the listener's readiness event and the SIGTERM callback: the
    # callback closed the socket, then the batch goes on to the accept. Without the guard the
    # accept raises on the closed socket and gunicorn's worker dies with its connections.
    worker = Worker(listener)
    sigterm = install_on(worker)
    sigterm(signal.SIGTERM, None)
    worker.method_queue.run()

    worker.accept(listener)  # no exception
    assert worker.accepted == []


def test_accept_still_works_before_the_stop(listener: socket.socket) -> None:
    worker = Worker(listener)
    install_on(worker)
    client = connect(listener.getsockname())
    worker.accept(listener)
    assert len(worker.accepted) == 1
    client.close()
    worker.accepted[0].close()


def test_sigterm_while_loading_the_app_stops_listening_at_once(listener: socket.socket) -> None:
    worker = Worker(listener)
    worker.alive = False  # gunicorn's handler ran before the hook was installed
    install_on(worker)
    assert listener.fileno() == -1
