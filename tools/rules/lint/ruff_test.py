"""Runs `ruff check` and `ruff format --check` over the repo's Python code under `bazel test`.

The files come as arguments (//:lint_srcs, the test's declared inputs); Python is picked out by
name (*.py) or by a `#!` line naming python (tools/dev/ci/affected). ruff comes from the locked PyPI
wheel (pip.parse), taken out of it by wheel_scripts.py.
"""

import os
import subprocess
import sys
from pathlib import Path

from tools.rules.lint.wheel_scripts import extract_script

CONFIG = "ruff.toml"


def is_python(path: Path) -> bool:
    """A .py file, or a script whose #! line runs python."""
    if path.suffix == ".py":
        return True
    if path.suffix:
        return False
    with path.open("rb") as script:
        first = script.readline()
    return first.startswith(b"#!") and b"python" in first


def main(wheel: str, files: list[str]) -> int:
    """Checks the Python files among `files` with the configuration in ruff.toml."""
    ruff = extract_script(Path(wheel), "ruff", Path(os.environ.get("TEST_TMPDIR", "/tmp")))
    python = sorted(f for f in files if is_python(Path(f)))
    if not python:
        print("ruff: no Python file among the inputs")
        return 1
    status = 0
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(ruff), *command, "--no-cache", "--config", CONFIG, *python], check=False
        )
        status = status or result.returncode
    if status:
        print("ruff found problems above: run `ruff format` and `ruff check --fix`.")
    else:
        print(f"ruff: {len(python)} files clean")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
