"""Runs `ruff check` and `ruff format --check` over the repo's Python code under `bazel test`.

ruff comes from the locked PyPI wheel (pip.parse); rules_python 0.22 exposes no target for the
binary inside it, so the test takes it out of the wheel itself.
"""

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

# Directories whose Python code must be ruff-clean; each has (or inherits) a ruff configuration.
PYTHON_ROOTS = ["py_service", "deploy", "tools"]


def extract_ruff(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".data/scripts/ruff"))
        binary = into / "ruff"
        binary.write_bytes(archive.read(member))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


def workspace_root() -> Path:
    # MODULE.bazel is a runfile symlinking into the source tree; the test is tagged "external"
    # so it reruns every time, as any Python file may have changed.
    return Path(os.path.realpath("MODULE.bazel")).parent


def main(wheel: str) -> int:
    root = workspace_root()
    ruff = extract_ruff(Path(wheel), Path(os.environ.get("TEST_TMPDIR", "/tmp")))
    roots = [r for r in PYTHON_ROOTS if (root / r).is_dir()]
    status = 0
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run([str(ruff), *command, "--no-cache", *roots], cwd=root, check=False)
        status = status or result.returncode
    if status:
        print("ruff found problems above: run `ruff format` and `ruff check --fix`.")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
