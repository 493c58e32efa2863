"""Graceful stop for gunicorn's gthread workers: stop listening at once on SIGTERM.

gunicorn 27's gthread worker, told to stop, unregisters its listening socket but keeps it open
until its in-flight requests are done: connections the kernel queues meanwhile are never accepted,
and are reset when the socket finally closes, after the client sent its request. This module makes
the first worker told to stop take what is queued and shut the (shared) socket down at once, as
Nginx and Go's http.Server stop listening: a client is then refused (and may retry elsewhere), not
reset. Requests already received are answered by gunicorn itself, with "Connection: close"
(RFC 9112 section 9.6), and its idle keep-alive connections are kept for a short linger (gthread's
STOP_KEEPALIVE_LINGER).

gunicorn.conf.py installs it as the post_worker_init server hook.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
from collections.abc import Callable
from typing import Any

SignalInstaller = Callable[[int, Callable[[int, Any], None]], object]


def post_worker_init(worker: Any) -> None:
    """gunicorn's post_worker_init hook: stop_listening_on_sigterm(worker), in the worker, after
    it has loaded the app and before it serves."""
    stop_listening_on_sigterm(worker)


def stop_listening_on_sigterm(
    worker: Any,
    install: SignalInstaller = signal.signal,
    parent_listens: Callable[[Any], bool] | None = None,
) -> None:
    """Make `worker` (gunicorn's ThreadWorker, in post_worker_init) stop listening on SIGTERM.

    Uses the worker's `sockets`, `set_accept_enabled`, `accept`, `method_queue.defer`,
    `handle_exit`, `alive` and `cfg.backlog`; replaces `worker.accept` and installs a SIGTERM
    handler with `install` (signal.signal; a test passes its own). `parent_listens(listener)`
    tells whether gunicorn's master still holds the socket (default: its /proc/PPID/fd).

    On SIGTERM, on the worker's event loop: take what is queued on the listening socket; if the
    master has closed its own copy (it does so first when it stops, Arbiter.stop), shut the
    socket down (the kernel's socket, which the master and every worker share: it stops
    listening for all of them at once, so new connections are refused, not queued behind a
    worker that will not accept them), else only close this worker's copy (a worker retired by
    a reload, HUP, or by fewer workers, TTOU, while the server goes on); then begin gunicorn's
    graceful exit, whose answers say "Connection: close". In that order, a client told to
    reconnect is refused, never queued on a socket about to close. What is still reset is a
    connection completing its handshake between the last accept and the shutdown: inherent to
    TCP, a fresh connection, which a proxy in front (Nginx's proxy_next_upstream) or the client
    may retry.
    """
    closed: set[int] = set()
    listens = parent_listens or _parent_listens

    def forget(listener: Any) -> None:
        """This worker neither polls nor holds listener any more."""
        worker.set_accept_enabled(False)
        if listener in worker.sockets:  # run() registers worker.sockets when it re-enables
            worker.sockets.remove(listener)
        closed.add(id(listener))
        listener.close()

    def stop_listening() -> None:
        for listener in list(worker.sockets):
            worker.set_accept_enabled(False)
            for _ in range(worker.cfg.backlog):
                if not select.select([listener], [], [], 0)[0]:
                    break
                try:
                    accept_open(listener)
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
                    break  # another worker shut it down first
            if not listens(listener):  # the server is stopping, not just this worker
                with contextlib.suppress(OSError):  # already shut down by another worker
                    listener.shutdown(socket.SHUT_RD)
            forget(listener)

    # stop_listening runs as a callback of the worker's event loop, and the same batch of events
    # may still hold a readiness event of the listener it closed: gunicorn would then call accept
    # on a closed socket, and the worker would die with every connection it holds (seen under
    # load: "'NoneType' object has no attribute 'accept'", then resets of requests already
    # sent). Such a stale event is skipped. A socket another worker shut down is readable and
    # its accept fails with EINVAL: this worker lets go of it too. run() registers worker.accept
    # after post_worker_init, so the event loop calls this one.
    accept_open = worker.accept

    def accept(listener: Any) -> None:
        if id(listener) in closed:
            return
        try:
            accept_open(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            forget(listener)

    worker.accept = accept
    begin_graceful_exit = worker.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        def stop() -> None:
            stop_listening()
            begin_graceful_exit(sig, frame)  # from here on, answers say "Connection: close"

        # On the worker's event loop, never from a signal handler that interrupted an accept.
        worker.method_queue.defer(stop)

    install(signal.SIGTERM, handle_exit)
    if not worker.alive:  # SIGTERM arrived while this worker was loading the app
        stop_listening()


def _parent_listens(listener: Any) -> bool:
    """Whether this process's parent (gunicorn's master) holds a descriptor of listener's socket,
    read from /proc/PPID/fd (Linux; the same user may read it). True when it cannot be told: the
    safe side is to close only this worker's copy."""
    mine = os.fstat(listener.fileno())
    fds = f"/proc/{os.getppid()}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return True
    for name in names:
        with contextlib.suppress(OSError):  # closed meanwhile
            theirs = os.stat(f"{fds}/{name}")
            if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
                return True
    return False
