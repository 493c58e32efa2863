"""deploy/stack.env, the stack's settings, for Python: the stack tests' harness and the benchmark.

The file's format is the subset that Compose's --env-file, kustomize's configMapGenerator envs,
deploy/stack.sh and this module read alike; read() refuses anything else, naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

SETTINGS_FILE = Path(__file__).with_name("stack.env")
# deploy/stack.sh's load_settings holds the same pattern.
SETTING = re.compile(r"(STACK_[A-Z0-9_]+)=([A-Za-z0-9_./:@+-]+)")


def read(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """The file's settings, {name: value} in the file's order. ValueError, naming the file and the
    line, for a line that is neither blank, a comment nor NAME=VALUE, or a name given twice."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = SETTING.fullmatch(line)
        if match is None:
            raise ValueError(f"{path}:{number}: want STACK_NAME=VALUE, got {line!r}")
        name, value = match.groups()
        if name in settings:
            raise ValueError(f"{path}:{number}: {name} is set twice")
        settings[name] = value
    return settings


def effective(environ: Mapping[str, str], path: Path = SETTINGS_FILE) -> dict[str, str]:
    """Each setting as deploy/stack.sh hands it to Compose: the environment's value when it is set
    and not empty, else the file's."""
    return {name: environ.get(name) or value for name, value in read(path).items()}
