"""services' start, wait and stop, against a fake server of this test's own (a Python script that
serves /healthz and reports what it was started with): the repo's real services are the deploy
tests' to start (//deploy/redis:acl_test, //deploy:metrics_vocabulary_test)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from tools.testing.python import services
from tools.testing.python.services import ServerExitedError, go_and_python, serving
from tools.testing.python.support import free_port, http_request

# FAKE_MODE: serve (the default), exit (at once, with 3), unhealthy (/healthz answers 503), or
# ignore-sigterm. Listens on -listen's address, else BIND's, as the two services do.
FAKE_SERVER = """
    import http.server, json, os, signal, sys

    mode = os.environ.get("FAKE_MODE", "serve")
    argv = sys.argv
    listen = argv[argv.index("-listen") + 1] if "-listen" in argv else os.environ["BIND"]
    print(f"fake server {os.getpid()} on {listen}", file=sys.stderr, flush=True)
    if mode == "exit":
        print("flag provided but not defined: -bogus", file=sys.stderr)
        sys.exit(3)
    if mode == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                status, body = (503 if mode == "unhealthy" else 200), b"ok"
            else:  # /started: what this process was started with
                environ = {k: v for k, v in os.environ.items() if k != "PATH"}
                started = {"argv": sys.argv[1:], "env": environ, "pid": os.getpid()}
                status, body = 200, json.dumps(started).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    host, port = listen.rsplit(":", 1)
    http.server.HTTPServer((host, int(port)), Handler).serve_forever()
"""


@pytest.fixture
def fake_server(tmp_path: Path) -> str:
    """An executable that runs FAKE_SERVER (through sh: a shebang may not hold a long path)."""
    script = tmp_path / "fake_server.py"
    script.write_text(textwrap.dedent(FAKE_SERVER))
    program = tmp_path / "fake_server"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    program.chmod(0o755)
    return str(program)


def started(base_url: str) -> dict:
    return json.loads(http_request(base_url + "/started").text)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def fake_pid(stderr: Path) -> int:
    return int(stderr.read_text().split()[2])


def test_the_block_runs_while_the_server_answers_and_it_is_stopped_after(
    fake_server: str, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with serving([fake_server, "-listen", base.removeprefix("http://")], base, tmp_path / "log"):
        assert http_request(base + "/healthz").status == 200
        pid = started(base)["pid"]
    assert gone(pid)
    with pytest.raises(OSError):  # noqa: PT011 (refused: nothing listens any more)
        http_request(base + "/healthz")


def test_a_server_that_exits_fails_the_wait_at_once_with_its_stderr(
    fake_server: str, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    argv = [fake_server, "-listen", base.removeprefix("http://")]
    # The bound stays the default 120 s: only the exit ends this wait early, and as this error.
    with (
        pytest.raises(ServerExitedError, match="exited with 3") as raised,
        serving(argv, base, tmp_path / "log", env={"FAKE_MODE": "exit"}),
    ):
        pytest.fail("entered the block")
    assert "flag provided but not defined: -bogus" in str(raised.value)


def test_a_server_that_never_answers_200_times_out_and_is_stopped(
    fake_server: str, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    argv = [fake_server, "-listen", base.removeprefix("http://")]
    log = tmp_path / "log"
    with (
        pytest.raises(TimeoutError, match="/healthz") as raised,
        serving(argv, base, log, env={"FAKE_MODE": "unhealthy"}, timeout_s=1),
    ):
        pytest.fail("entered the block")
    assert "it returned False" in str(raised.value)
    assert "fake server" in str(raised.value)  # its stderr
    assert gone(fake_pid(log))


def test_a_server_that_ignores_sigterm_is_killed(
    fake_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "STOP_TIMEOUT_S", 0.5)
    base = f"http://127.0.0.1:{free_port()}"
    argv = [fake_server, "-listen", base.removeprefix("http://")]
    with serving(argv, base, tmp_path / "log", env={"FAKE_MODE": "ignore-sigterm"}):
        pid = started(base)["pid"]
    assert gone(pid)


def test_go_and_python_start_each_binary_with_its_address_arguments_and_environment(
    fake_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GO_SERVICE", fake_server)
    monkeypatch.setenv("PY_SERVICE", fake_server)
    with go_and_python(
        tmp_path,
        go_args=["-cache-backend=redis"],
        go_env={"REDIS_TIMEOUT": "1s"},
        py_env={"WEB_CONCURRENCY": "1"},
    ) as urls:
        assert set(urls) == {"go", "python"}
        go, python = started(urls["go"]), started(urls["python"])
    go_listen = urls["go"].removeprefix("http://")
    assert go["argv"] == ["-listen", go_listen, "-cache-backend=redis"]
    assert go["env"]["REDIS_TIMEOUT"] == "1s"
    assert "BIND" not in go["env"]
    assert python["argv"] == []
    assert python["env"]["BIND"] == urls["python"].removeprefix("http://")
    assert python["env"]["WEB_CONCURRENCY"] == "1"
    assert "REDIS_TIMEOUT" not in python["env"]
    assert Path(python["env"]["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
    assert go_listen.startswith("127.0.0.1:")
    assert urls["python"].startswith("http://127.0.0.1:")
    assert go_listen != urls["python"].removeprefix("http://")
    assert gone(go["pid"])
    assert gone(python["pid"])
    # Each one's stderr in tmp.
    assert (tmp_path / "go_service.stderr").read_text().startswith(f"fake server {go['pid']}")
    assert (tmp_path / "py_service.stderr").read_text().startswith(f"fake server {python['pid']}")
