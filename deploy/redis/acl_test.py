"""Redis as the stack runs it (the image's arguments, the ACL users_acl.sh writes) on a loopback
port, and both services' real binaries as its clients: who may do what.

- a connection that has not authenticated is refused everything, PING included;
- each service, as its own ACL user with its password file, caches through Redis without one
  refused command (redis_errors_total stays 0), and reaches only its own keys;
- no user may run an administrative command; healthcheck may PING and nothing else;
- users_acl.sh refuses a missing or malformed password file, and its output holds no password.

Inputs, from the BUILD file, in the environment: REDIS_ARGS (the image's arguments, JSON),
USERS_ACL_SH, GO_SERVICE and PY_SERVICE (the binaries). redis-server from PATH (tools/bazel's
chroot installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tools.testing.python.services import go_and_python
from tools.testing.python.support import free_port, http_request, wait_until

# The image's path of the ACL file, which the test replaces by its own.
IMAGE_ACL_FILE = "/etc/redis/acl/users.acl"


@dataclass(frozen=True)
class Server:
    port: int
    passwords: dict[str, Path]  # user -> its password file

    def client(self, user: str | None = None, password: str | None = None) -> redis.Redis:
        if user is not None and password is None:
            password = self.passwords[user].read_text().strip()
        return redis.Redis(
            port=self.port, username=user, password=password, socket_timeout=5, protocol=2
        )


def write_password(path: Path) -> Path:
    path.write_text(secrets.token_urlsafe(18) + "\n")
    path.chmod(0o600)
    return path


def users_acl(**password_files: Path) -> subprocess.CompletedProcess[str]:
    """users_acl.sh with USER=FILE arguments; a keyword's underscores are the user name's dashes."""
    pairs = [f"{user.replace('_', '-')}={path}" for user, path in password_files.items()]
    return subprocess.run(
        [os.environ["USERS_ACL_SH"], *pairs],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
    tmp = tmp_path_factory.mktemp("redis")
    passwords = {
        "go-service": write_password(tmp / "go-service"),
        "py-service-redis": write_password(tmp / "py-service-redis"),
        "monitor": write_password(tmp / "monitor"),
    }
    acl = users_acl(
        go_service=passwords["go-service"],
        py_service_redis=passwords["py-service-redis"],
        monitor=passwords["monitor"],
    )
    assert acl.returncode == 0, acl.stderr
    (tmp / "users.acl").write_text(acl.stdout)
    args = json.loads(os.environ["REDIS_ARGS"])
    assert IMAGE_ACL_FILE in args, f"the image no longer reads {IMAGE_ACL_FILE}: {args}"
    args = [str(tmp / "users.acl") if a == IMAGE_ACL_FILE else a for a in args]
    port = free_port()
    process = subprocess.Popen(
        [executable, *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )
    srv = Server(port, passwords)
    try:
        wait_until(
            lambda: srv.client("healthcheck", "any").ping(),
            timeout_s=10,
            interval_s=0.05,
            what=f"redis-server on {port}",
            retry_on=(redis.ConnectionError,),
        )
        yield srv
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_client_without_credentials_is_refused_everything(server: Server) -> None:
    anonymous = server.client()
    for command in (("PING",), ("GET", "go_service:v1:time"), ("INFO",), ("CONFIG", "GET", "*")):
        with pytest.raises(redis.AuthenticationError, match="Authentication required"):
            anonymous.execute_command(*command)
    with pytest.raises(redis.AuthenticationError):
        server.client("go-service", "not-the-password").ping()


def test_protected_mode_is_on(server: Server) -> None:
    # What the issue measured: protected mode was off. It guards a default user without a password.
    assert "--protected-mode" in (args := json.loads(os.environ["REDIS_ARGS"]))
    assert args[args.index("--protected-mode") + 1] == "yes"


def test_the_health_check_user_may_only_ping(server: Server) -> None:
    health = server.client("healthcheck", "whatever")
    assert health.ping() is True
    for command in (("GET", "go_service:v1:time"), ("SET", "x", "1"), ("INFO",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            health.execute_command(*command)


def test_the_monitor_user_may_read_info_and_no_key(server: Server) -> None:
    monitor = server.client("monitor")
    assert "used_memory" in monitor.info("memory")
    for command in (("GET", "go_service:v1:time"), ("SET", "x", "1"), ("CONFIG", "GET", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            monitor.execute_command(*command)


@pytest.mark.parametrize(
    ("user", "own", "other"),
    [
        ("go-service", "go_service:v1:k", "py_service:v1:k"),
        ("py-service-redis", "py_service:v1:k", "go_service:v1:k"),
    ],
)
def test_each_service_reaches_only_its_own_keys(
    server: Server, user: str, own: str, other: str
) -> None:
    client = server.client(user)
    assert client.set(own, "v", ex=10) is True
    assert client.getrange(own, 0, 10) == b"v"
    for command in (("GETRANGE", other, "0", "10"), ("SET", other, "v")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    for admin in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"), ("INFO",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*admin)


def metric(base: str, name: str) -> float:
    for line in http_request(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed by {base}")


@pytest.fixture
def services(server: Server, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Both services caching in the server as their ACL users: {"go": base URL, "python": ...}."""
    redis_at = f"127.0.0.1:{server.port}/0"
    with go_and_python(
        tmp_path,
        go_args=["-cache-backend=redis"],
        go_env={
            "REDIS_URL": f"redis://go-service@{redis_at}",
            "REDIS_PASSWORD_FILE": str(server.passwords["go-service"]),
            "REDIS_TIMEOUT": "1s",  # a busy machine's slow answer is not what this tests
        },
        py_env={
            "WEB_CONCURRENCY": "1",
            "CACHE_BACKEND": "redis",
            "REDIS_URL": f"redis://py-service-redis@{redis_at}",
            "REDIS_PASSWORD_FILE": str(server.passwords["py-service-redis"]),
        },
    ) as urls:
        yield urls


def test_both_services_cache_through_redis_as_their_users(
    server: Server, services: dict[str, str]
) -> None:
    for base in services.values():
        assert http_request(f"{base}/time").status == 200
        assert http_request(f"{base}/static-text").status == 200
    # The Python variant answers its second request from Redis.
    assert http_request(f"{services['python']}/time").headers.get("X-Cache") == "HIT"
    for base in services.values():
        assert metric(base, "redis_errors_total") == 0, base
        assert metric(base, "redis_invalid_values_total") == 0, base
    go_keys = server.client("go-service").execute_command("GETRANGE", "go_service:v1:time", 0, -1)
    assert go_keys, "the Go service stored nothing under its keys"


@pytest.mark.parametrize("content", [None, "", "\n", "two\nlines\n"])
def test_users_acl_refuses_a_missing_or_malformed_password_file(
    tmp_path: Path, content: str | None
) -> None:
    good, bad = write_password(tmp_path / "good"), tmp_path / "password"
    if content is not None:
        bad.write_text(content)
    result = users_acl(go_service=good, monitor=bad)
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert result.stdout == ""  # nothing half-written


def test_users_acl_refuses_an_unknown_user(tmp_path: Path) -> None:
    result = users_acl(root=write_password(tmp_path / "root"))
    assert result.returncode == 2
    assert "root=" in result.stderr
    assert result.stdout == ""


def test_users_acl_holds_no_password(tmp_path: Path) -> None:
    go, py = write_password(tmp_path / "go"), write_password(tmp_path / "py")
    acl = users_acl(go_service=go, py_service_redis=py).stdout
    for password_file in (go, py):
        assert password_file.read_text().strip() not in acl
    assert [line.split()[1] for line in acl.splitlines()] == [
        "default",
        "go-service",
        "py-service-redis",
        "healthcheck",
    ]
