"""Every Python script a user runs with the machine's python3 works on the oldest one supported.

Such a script is a file whose `#!` line names python (tools/dev/ci/affected,
tools/rules/debian/lock.py): CI and users run it before Bazel, or without it, with whatever python3
the machine has. The oldest supported is Debian 12's 3.11, locked as @python3_11 with its own glibc
(docs/bazel.md, "Scripts run with the machine's python3"). Each script must be executable,
answer `--help` under 3.11 and under the build's 3.13 (so it compiles and its imports resolve on
both), and be checked by ruff as 3.11 code (ruff.toml, `per-file-target-version`): with the repo's
py313 target, ruff's pyupgrade would ask for syntax 3.11 lacks, such as the `type` statement.

usage: host_python_test.py PYTHON3_11 FILE... (the files: //:lint_srcs, with ruff.toml)
"""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

MINIMUM = "py311"
RUFF_TOML = Path("ruff.toml")  # among //:lint_srcs, at the root of the runfiles


def is_python_script(path: Path) -> bool:
    """A file whose #! line runs python."""
    with path.open("rb") as script:
        first = script.readline()
    return first.startswith(b"#!") and b"python" in first


def scripts(files: list[str]) -> list[Path]:
    return sorted(Path(f) for f in files if is_python_script(Path(f)))


def run(interpreter: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([interpreter, *args], capture_output=True, text=True, check=False)


PYTHON3_11, *FILES = sys.argv[1:] or [""]
SCRIPTS = scripts(FILES)


def test_there_are_scripts() -> None:
    # tools/dev/ci/affected at least: an empty list would check nothing.
    assert Path("tools/dev/ci/affected") in SCRIPTS, SCRIPTS


def test_the_interpreter_is_3_11() -> None:
    out = run(PYTHON3_11, "-c", "import sys; print(*sys.version_info[:2])")
    assert out.stdout.split() == ["3", "11"], out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_is_executable(script: Path) -> None:
    # The docs run it by its path (`tools/dev/ci/affected`), so that its #! line picks python3.
    assert os.access(script, os.X_OK), f"{script}: chmod +x (git update-index --chmod=+x)"


@pytest.mark.parametrize("interpreter", ["3.11", "build"])
@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_answers_help(script: Path, interpreter: str) -> None:
    python = PYTHON3_11 if interpreter == "3.11" else sys.executable  # build: the toolchain's
    result = run(python, str(script), "--help")
    assert result.returncode == 0, f"{script} --help under {interpreter}:\n{result.stderr}"
    assert result.stdout.startswith("usage:"), result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_ruff_checks_it_as_3_11(script: Path) -> None:
    config = tomllib.loads(RUFF_TOML.read_text(encoding="utf-8"))
    targets = config.get("per-file-target-version", {})
    assert targets.get(str(script)) == MINIMUM, (
        f'{script}: add `"{script}" = "{MINIMUM}"` to [per-file-target-version] in ruff.toml'
    )


def test_is_python_script(tmp_path: Path) -> None:
    cases = {
        "env": b"#!/usr/bin/env python3\n",
        "direct": b"#!/usr/bin/python3 -u\n",
        "bash": b"#!/usr/bin/env bash\n",
        "mention": b"# python\n",
        "empty": b"",
    }
    for name, first in cases.items():
        (tmp_path / name).write_bytes(first + b"pass\n")
    found = {p.name for p in scripts([str(tmp_path / name) for name in cases])}
    assert found == {"env", "direct"}


if __name__ == "__main__":
    # The arguments are the interpreter and the repo's files, read above, not pytest's.
    sys.exit(pytest.main([__file__, "-p", "no:cacheprovider", "-v"]))
