"""Test helpers: locating files, child environments, metrics parsing, a fake clock, redis-server,
and a fake Redis that shows what a client sends and when. (Bounded waits, free ports and HTTP
requests: tools/testing/python/support.py.)"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import redis
from prometheus_client.parser import text_string_to_metric_families

from tools.testing.python.support import free_port, wait_until

# The Redis timeout of the tests whose subject is caching, not timeouts: the longest Config allows,
# which no live Redis misses on any machine. With the production 0.2 s, a slow answer on a busy
# machine is counted as an error (correctly) and fails a test that counts errors or hits.
REDIS_TIMEOUT_S = 10

# Directory of this file, symlinks kept: under Bazel it lies in a runfiles tree
# whose symlinks point back into the source tree, and only the runfiles tree
# has the data files next to it.
TESTS_DIR = Path(os.path.abspath(__file__)).parent
SERVICE_DIR = TESTS_DIR.parent
CONTRACT = Path("api") / "openapi.json"


def find_contract() -> Path:
    for directory in (TESTS_DIR, *TESTS_DIR.parents):
        if (directory / CONTRACT).is_file():
            return directory / CONTRACT
    raise FileNotFoundError(f"{CONTRACT} not found in {TESTS_DIR} or any parent")


def child_process_env(**overrides: str) -> dict[str, str]:
    """Environment for a child Python that can import everything this one can."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    env.update(overrides)
    return env


def samples(metrics_text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse a text exposition into {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def sample_sum(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples called name whose labels include labels."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample_name, sample_labels), value in samples(metrics_text).items()
        if sample_name == name and wanted <= sample_labels
    )


class FakeClock:
    """A clock the tests move by hand, starting at 2024-05-01T12:00:00Z."""

    def __init__(self, now: float = 1_714_564_800.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RedisServer:
    """A throwaway redis-server on a loopback port, without persistence; extra_args are added to
    its command line (ACL users: "--user", "NAME", "on", ">PASSWORD", ...)."""

    def __init__(self, executable: str, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.executable = executable
        self.workdir = workdir
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            wait_until(
                self._answers(probe),
                timeout_s=10,
                interval_s=0.05,
                what=f"redis-server on {self.port}",
            )
        finally:
            probe.close()

    def _answers(self, probe: redis.Redis) -> Callable[[], bool]:
        def ping() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, "redis-server exited during startup"
            try:
                return bool(probe.ping())
            except redis.AuthenticationError:  # the default user is off: it answers all the same
                return True
            except (redis.ConnectionError, redis.TimeoutError):  # not up yet, or slow to start
                return False

        return ping

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)  # never missed by a live server


# One Redis command as the client sent it: its name and arguments, as bytes.
Command = list[bytes]


# HELLO's answer (RESP3, the protocol redis-py 8 asks for): a map with the fields it reads.
HELLO_REPLY = b"%3\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n+mode\r\n+standalone\r\n"


def redis_reply(command: Command) -> bytes:
    """What a Redis with an empty data set answers: the commands redis-py sends on every new
    connection (HELLO, CLIENT SETINFO, SELECT) as Redis does, SET with +OK, GET with null and
    GETRANGE with an empty string (no entry), and anything else with an error, so that a command
    the fake does not expect shows."""
    name = command[0].upper()
    if name == b"HELLO":
        return HELLO_REPLY
    if name in (b"CLIENT", b"SELECT", b"SET"):
        return b"+OK\r\n"
    if name == b"GET":
        return b"_\r\n"
    if name == b"GETRANGE":
        return b"$0\r\n\r\n"
    if name == b"PING":
        return b"+PONG\r\n"
    return b"-ERR unknown command '" + name + b"'\r\n"


def never_answer(_: Command) -> None:
    """A frozen Redis (docker pause, SIGSTOP): it takes every command and answers none."""
    return None


def read_command(stream: BinaryIO) -> Command | None:
    """One command in RESP's array form (what redis-py sends), or None at the end of the stream.

    Raises:
        ValueError: the bytes are not a RESP array of bulk strings.
    """
    header = stream.readline()
    if not header:
        return None
    if not header.startswith(b"*"):
        raise ValueError(f"want a RESP array, got {header!r}")
    command = []
    for _ in range(int(header[1:])):
        length = stream.readline()
        if not length.startswith(b"$"):
            raise ValueError(f"want a RESP bulk string, got {length!r}")
        command.append(stream.read(int(length[1:]) + 2)[:-2])
    return command


class FakeRedis:
    """A Redis stand-in on a loopback port, one thread per connection, whose answer to each
    command is `answer(command)` (bytes to send, or None never to answer; `redis_reply` by
    default). It counts connections and those closed, keeps every command, and counts the
    commands in flight (received, not yet answered) and the most that ever were at once: what a
    test of timing asks of a client, without measuring the machine. Use it as a context
    manager."""

    def __init__(self, answer: Callable[[Command], bytes | None] = redis_reply) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self.connections = 0
        self.closed = 0
        self.commands: list[Command] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._open: set[socket.socket] = set()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request, self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-redis")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._server.server_address[1]}/0"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        with self._lock:  # a never-answered client may still hold its connection: end it
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=10)

    def names(self) -> list[bytes]:
        """The commands' names so far, in the order they came, upper case."""
        with self._lock:
            return [command[0].upper() for command in self.commands]

    def _serve(self, conn: socket.socket, rfile: BinaryIO, wfile: BinaryIO) -> None:
        with self._lock:
            self.connections += 1
            self._open.add(conn)
        unanswered = 0
        try:
            while (command := read_command(rfile)) is not None:
                with self._lock:
                    self.commands.append(command)
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                unanswered += 1
                reply = self._answer(command)
                if reply is None:
                    continue  # left unanswered; the client gives up and closes
                wfile.write(reply)
                with self._lock:
                    self.in_flight -= 1
                unanswered -= 1
        except OSError:
            pass  # the client or __exit__ closed the connection
        finally:
            with self._lock:
                self.in_flight -= unanswered
                self._open.discard(conn)
                self.closed += 1
