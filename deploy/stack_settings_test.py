"""deploy/stack.env is where each of the stack's defaults is written, and the one place: Compose's
file writes none of its own, the services' built-in defaults equal it, the banner `up` prints
follows the settings in force, and the file keeps to the format all its readers agree on.
(Kubernetes reads it through the base's ConfigMap: //deploy/k8s:static_test.)

Inputs, from the BUILD file, in the environment: GO_SERVICE (the Go service's binary) and
STACK_SH (deploy/stack.sh); deploy/compose.yaml and deploy/stack.env are in the runfiles.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy import stack_settings
from py_service.app.config import Config
from py_service.app.duration import parse_duration

GO_SERVICE = os.environ["GO_SERVICE"]
STACK_SH = os.environ["STACK_SH"]
COMPOSE_YAML = Path("deploy/compose.yaml")
SETTINGS = stack_settings.read()
# compose.yaml's variables that are no settings: stack.sh sets them for each command.
SET_BY_STACK_SH = {
    "STACK_SECRETS_DIR",
    "STACK_ALERT_WEBHOOK_URL_FILE",
    "STACK_NGINX_UNLIMITED_CLIENTS_FILE",
}


def go_flag_defaults() -> dict[str, str]:
    """{flag: default} as `go_service -help` prints them: "-cache-ttl duration", then a line
    ending in "(default 10s)"."""
    out = subprocess.run(
        [GO_SERVICE, "-help"], capture_output=True, text=True, timeout=30, check=True
    )
    usage = out.stdout + out.stderr
    return dict(re.findall(r"^  -(\S+) .*\n\s+.*\(default (\S+)\)$", usage, re.MULTILINE))


def test_compose_writes_no_default_and_reads_every_setting() -> None:
    text = COMPOSE_YAML.read_text()
    assert not re.findall(r"\$\{STACK_\w+:-[^}]*\}", text), "a default in compose.yaml"
    read = set(re.findall(r"\$\{(STACK_\w+)", text)) - SET_BY_STACK_SH
    assert read == set(SETTINGS)


@pytest.mark.parametrize(
    ("flag", "setting"),
    [("cache-ttl", "STACK_GO_CACHE_TTL"), ("redis-timeout", "STACK_GO_REDIS_TIMEOUT")],
)
def test_the_go_service_built_in_defaults_are_the_files(flag: str, setting: str) -> None:
    # A bare binary needs a default of its own; it must be the one the stack runs with.
    assert parse_duration(go_flag_defaults()[flag]) == parse_duration(SETTINGS[setting])


def test_the_python_service_built_in_default_is_the_files() -> None:
    assert Config().cache_ttl * 1_000_000_000 == parse_duration(SETTINGS["STACK_PY_CACHE_TTL"])


def stack_sh_urls(home: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """`stack.sh urls` (the banner `up` ends with), run with only these variables and PATH."""
    return subprocess.run(
        ["bash", STACK_SH, "urls"],
        env={"PATH": os.environ["PATH"], "HOME": str(home), **environ},
        capture_output=True,
        text=True,
        timeout=30,
    )


def urls(home: Path, **environ: str) -> str:
    """What `stack.sh urls` prints for these STACK_* variables."""
    out = stack_sh_urls(home, **environ)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_banner_shows_the_files_settings(tmp_path: Path) -> None:
    banner = urls(tmp_path)
    go_ttl, py_ttl = SETTINGS["STACK_GO_CACHE_TTL"], SETTINGS["STACK_PY_CACHE_TTL"]
    assert f"in-process cache in front of Redis ({go_ttl})" in banner
    assert f"(Nginx cache, {py_ttl})" in banner
    assert f"{SETTINGS['STACK_NGINX_BIND']}:{SETTINGS['STACK_NGINX_PORT']}/go/time" in banner


def test_the_banner_follows_changed_settings(tmp_path: Path) -> None:
    banner = urls(
        tmp_path,
        STACK_GO_CACHE_TTL="3s",
        STACK_PY_CACHE_TTL="2m",
        STACK_GO_REPLICAS="4",
        STACK_NGINX_PORT="8088",
        # Empty is unset, as for the services: the file's value.
        STACK_NGINX_BIND="",
    )
    assert "Go service: 4 replica(s), in-process cache in front of Redis (3s)" in banner
    assert "(Nginx cache, 2m)" in banner
    assert f"{SETTINGS['STACK_NGINX_BIND']}:8088/go/time" in banner
    assert SETTINGS["STACK_GO_CACHE_TTL"] not in banner


def test_the_banner_of_a_running_stack_is_what_up_recorded(tmp_path: Path) -> None:
    # `up` records the settings it started with (record_settings, in the file's format) and
    # whether Grafana runs; `urls` later prints those, whatever the caller's environment says.
    state = tmp_path / ".local/state/cache-platform/cache-platform"
    state.mkdir(parents=True)
    recorded = {**SETTINGS, "STACK_GO_CACHE_TTL": "3s", "STACK_PROMETHEUS_BIND": "127.0.0.2"}
    lines = [f"{name}={value}" for name, value in recorded.items()] + ["grafana=0"]
    (state / "settings.env").write_text("\n".join(lines) + "\n")
    banner = urls(tmp_path, STACK_GO_CACHE_TTL="7s")
    assert "in-process cache in front of Redis (3s)" in banner
    assert f"http://127.0.0.2:{SETTINGS['STACK_PROMETHEUS_PORT']}" in banner
    assert "Grafana: not started" in banner
    assert f":{SETTINGS['STACK_GRAFANA_PORT']}" not in banner


def test_the_banner_without_a_running_stack_says_so(tmp_path: Path) -> None:
    out = stack_sh_urls(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no stack of project cache-platform is up" in out.stderr


@pytest.mark.parametrize(
    "line",
    [
        'STACK_X="quoted"',  # Compose strips the quotes, kustomize keeps them
        "STACK_X=two words",
        "STACK_X=1 # a comment",  # Compose drops the comment, kustomize keeps it
        "STACK_X=${HOME}",  # Compose interpolates it
        "STACK_X=",
        "X=1",  # tools/bazel passes STACK_* only
        " STACK_X=1",
    ],
)
def test_a_line_its_readers_would_read_apart_is_refused(line: str, tmp_path: Path) -> None:
    settings = workspace_with_settings(tmp_path, f"# a comment\n\n{line}\n")
    problem = f"{settings}:3: want STACK_NAME=VALUE, got"
    with pytest.raises(ValueError, match="want STACK_NAME=VALUE") as raised:
        stack_settings.read(settings)
    assert str(raised.value) == f"{problem} {line!r}"
    assert stack_sh_refusal(tmp_path) == f"deploy: {problem}: {line}\n"


def test_a_setting_given_twice_is_refused(tmp_path: Path) -> None:
    settings = workspace_with_settings(tmp_path, "STACK_X=1\nSTACK_X=2\n")
    with pytest.raises(ValueError, match="set twice") as raised:
        stack_settings.read(settings)
    assert str(raised.value) == f"{settings}:2: STACK_X is set twice"
    assert stack_sh_refusal(tmp_path) == f"deploy: {settings}:2: STACK_X is set twice\n"


def workspace_with_settings(root: Path, text: str) -> Path:
    """A workspace at root with compose.yaml and a stack.env holding text, as stack.sh finds them
    under BUILD_WORKSPACE_DIRECTORY; the settings file's path."""
    (root / "deploy").mkdir()
    shutil.copy(COMPOSE_YAML, root / "deploy/compose.yaml")
    settings = root / "deploy/stack.env"
    settings.write_text(text)
    return settings


def stack_sh_refusal(workspace: Path) -> str:
    """What `stack.sh urls` says on stderr, failing, about workspace's deploy/stack.env."""
    out = stack_sh_urls(workspace, BUILD_WORKSPACE_DIRECTORY=str(workspace))
    assert out.returncode == 1, out.stdout
    return out.stderr


def test_the_environment_wins_unless_empty() -> None:
    effective = stack_settings.effective({"STACK_GO_CACHE_TTL": "3s", "STACK_NGINX_PORT": ""})
    assert effective["STACK_GO_CACHE_TTL"] == "3s"
    assert effective["STACK_NGINX_PORT"] == SETTINGS["STACK_NGINX_PORT"]
    assert effective.keys() == SETTINGS.keys()
