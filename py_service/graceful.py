"""Graceful stop for gunicorn's gthread workers: stop listening at once on SIGTERM.

gunicorn 27's gthread worker, told to stop, unregisters its listening socket but keeps it open
until its in-flight requests are done: connections the kernel queues meanwhile are never accepted,
and are reset when the socket finally closes, after the client sent its request. This module makes
each worker take what is queued and close the socket at once instead, as Nginx and Go's
http.Server do: a client is then refused (and may retry elsewhere), not reset. Requests already
received are answered by gunicorn itself, with "Connection: close" (RFC 9112 section 9.6), and its
idle keep-alive connections are kept for a short linger (gthread's STOP_KEEPALIVE_LINGER).
"""

from __future__ import annotations

import select
import signal
from collections.abc import Callable
from typing import Any

SignalInstaller = Callable[[int, Callable[[int, Any], None]], object]


def stop_listening_on_sigterm(worker: Any, install: SignalInstaller = signal.signal) -> None:
    """Make `worker` (gunicorn's ThreadWorker, in post_worker_init) stop listening on SIGTERM.

    Uses the worker's `sockets`, `set_accept_enabled`, `accept`, `method_queue.defer`,
    `handle_exit`, `alive` and `cfg.backlog`; replaces `worker.accept` and installs a SIGTERM
    handler with `install` (signal.signal; a test passes its own).

    What is reset is at most what completes its TCP handshake between the last accept and the
    close of the socket's last holder: inherent to TCP, and a fresh connection, which a proxy in
    front (Nginx's proxy_next_upstream) or the client may retry.
    """
    listening = list(worker.sockets)
    closed: set[int] = set()

    def stop_listening() -> None:
        worker.set_accept_enabled(False)
        while listening:
            listener = listening.pop()
            # The socket is shared with the master and the other workers, and whichever closes
            # it last resets what is queued on it: take what is queued, then close.
            for _ in range(worker.cfg.backlog):
                if not select.select([listener], [], [], 0)[0]:
                    break
                accept_open(listener)
            closed.add(id(listener))
            listener.close()

    # stop_listening runs as a callback of the worker's event loop, and the same batch of events
    # may still hold a readiness event of the listener it closed: gunicorn would then call accept
    # on a closed socket, and the worker would die with every connection it holds (seen under
    # load: "'NoneType' object has no attribute 'accept'", then resets of requests already
    # sent). Such a stale event is skipped. run() registers worker.accept after post_worker_init,
    # so the event loop calls this one.
    accept_open = worker.accept

    def accept(listener: Any) -> None:
        if id(listener) not in closed:
            accept_open(listener)

    worker.accept = accept
    begin_graceful_exit = worker.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        begin_graceful_exit(sig, frame)
        # On the worker's event loop, never from a signal handler that interrupted an accept.
        worker.method_queue.defer(stop_listening)

    install(signal.SIGTERM, handle_exit)
    if not worker.alive:  # SIGTERM arrived while this worker was loading the app
        stop_listening()
