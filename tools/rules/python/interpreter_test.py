"""The build's Python is the locked Debian build the py_service image ships, not the machine's.

Checks, against tools/rules/debian/packages.lock.json: CPython's version is python3.13-minimal's,
the glibc it runs on is libc6's and its OpenSSL is libssl3t64's (the machine's own would differ:
Debian sid's python3.13 and glibc in tools/bazel's chroot, another distribution's elsewhere), and
a child started with sys.executable runs the same way. Debian 12's python3.11 (@python3_11, the
host-run scripts' oldest Python) likewise runs its own locked CPython, glibc and OpenSSL, through
the same launcher, python3.sh, which stops with one line unless exactly one python3.N is beside it.
"""

import json
import os
import platform
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

LOCK = Path(os.environ["TEST_SRCDIR"]) / "_main/tools/rules/debian/packages.lock.json"
PYTHON3_11 = os.environ["PYTHON3_11"]  # $(rootpath :python3_11)
LAUNCHER = Path(os.environ["LAUNCHER"])  # $(rootpath :python3.sh)


def upstream_version(debian_version: str) -> str:
    """'1:3.5.9-1~deb13u1' -> '3.5.9': a Debian version without its epoch and revision."""
    return debian_version.partition(":")[2 if ":" in debian_version else 0].rpartition("-")[0]


def locked(set_name: str, package: str) -> str:
    """The upstream version of `package` in `set_name` of the lock."""
    sets = json.loads(LOCK.read_text())["sets"]
    (version,) = [p["version"] for p in sets[set_name]["packages"] if p["name"] == package]
    return upstream_version(version)


def test_cpython_is_the_locked_build() -> None:
    assert platform.python_version() == locked("python", "python3.13-minimal")


def test_glibc_is_the_locked_one() -> None:
    assert platform.libc_ver() == ("glibc", locked("libc", "libc6"))


def test_openssl_is_the_locked_one() -> None:
    assert ssl.OPENSSL_VERSION.startswith(f"OpenSSL {locked('python', 'libssl3t64')} "), (
        ssl.OPENSSL_VERSION
    )


def test_not_the_machines_interpreter() -> None:
    real = os.path.realpath(sys.executable)
    assert "python3_13" in real
    assert os.path.realpath(sys.prefix).startswith(os.path.dirname(os.path.dirname(real)))


def test_child_runs_the_same_interpreter() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform; print(platform.python_version(), *platform.libc_ver())",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == [platform.python_version(), "glibc", locked("libc", "libc6")]


def test_python3_11_is_the_locked_build() -> None:
    code = (
        "import platform, ssl;"
        "print(platform.python_version(), *platform.libc_ver(), ssl.OPENSSL_VERSION)"
    )
    out = subprocess.run(
        [PYTHON3_11, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[:5] == [
        locked("python3_11", "python3.11-minimal"),
        "glibc",
        locked("python3_11", "libc6"),
        "OpenSSL",
        locked("python3_11", "libssl3"),
    ]


@pytest.mark.parametrize(
    ("interpreters", "error"),
    [
        ([], "python3.sh: no python3.N interpreter in "),
        (["python3.11", "python3.13"], "python3.sh: more than one interpreter in "),
    ],
)
def test_launcher_needs_one_interpreter(
    tmp_path: Path, interpreters: list[str], error: str
) -> None:
    bin_dir = tmp_path / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").write_bytes(LAUNCHER.read_bytes())
    (bin_dir / "python3").chmod(0o755)
    for name in [*interpreters, "python3.11-config"]:  # -config is not an interpreter
        (bin_dir / name).write_text("")
    result = subprocess.run(
        [bin_dir / "python3", "-V"], check=False, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith(error), result.stderr


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("3.13.5-2+deb13u5", "3.13.5"),
        ("1:3.5.9-1~deb13u1", "3.5.9"),
        ("2.41-12", "2.41"),
    ],
)
def test_upstream_version(debian: str, upstream: str) -> None:
    assert upstream_version(debian) == upstream
