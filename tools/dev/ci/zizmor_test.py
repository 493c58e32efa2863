"""zizmor, the GitHub Actions security linter, over .github/workflows: no finding at its default
level (the "regular" persona, every severity), offline.

zizmor is the PyPI wheel the root lock pins (requirements_lock.txt), its binary taken out of the
wheel (tools/rules/lint/wheel_scripts.py). `--offline` leaves out the audits that ask GitHub's
API (a tag's commit, known-vulnerable action versions): a test reaches no network, and which
commit a pinned tag names is checked by hand (tools/dev/ci/README.md, "GitHub workflows").
`--no-config` so that no configuration file can lower the level; an inline
`# zizmor: ignore[...]` comment would still count, and is read in review like any other line.

A second test gives zizmor a workflow with the faults it must report, so that a zizmor that
audits nothing (a wrong path, a broken binary) cannot pass the first.

Inputs, from the BUILD file, in the environment: ZIZMOR_WHEEL, WORKFLOWS (space-separated).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tools.rules.lint.wheel_scripts import extract_script

WHEEL = Path(os.environ["ZIZMOR_WHEEL"])
WORKFLOWS = [Path(p) for p in os.environ["WORKFLOWS"].split()]

# Write access for the whole workflow, an action by tag, the checkout's token left on disk.
UNSAFE_WORKFLOW = """\
name: unsafe
on: push
permissions:
  contents: write
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v6
      - run: make
"""


@pytest.fixture(scope="module")
def zizmor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_script(WHEEL, "zizmor", tmp_path_factory.mktemp("zizmor"))


def audit(
    zizmor: Path, inputs: list[Path], cache: Path, output: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(zizmor),
            "--offline",
            "--no-config",
            "--no-progress",
            "--color=never",
            f"--format={output}",
            f"--cache-dir={cache}",
            *map(str, inputs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workflows_have_no_finding(zizmor: Path, tmp_path: Path) -> None:
    assert WORKFLOWS, "WORKFLOWS is empty"
    proc = audit(zizmor, WORKFLOWS, tmp_path, "plain")
    assert proc.returncode == 0, f"zizmor found problems:\n{proc.stdout}\n{proc.stderr}"
    for workflow in WORKFLOWS:
        assert f"completed {workflow}" in proc.stderr, proc.stderr


def test_zizmor_reports_an_unsafe_workflow(zizmor: Path, tmp_path: Path) -> None:
    workflow = tmp_path / ".github/workflows/unsafe.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(UNSAFE_WORKFLOW)
    proc = audit(zizmor, [workflow], tmp_path, "json")
    assert proc.returncode != 0, proc.stderr
    found = {finding["ident"] for finding in json.loads(proc.stdout)}
    assert {"unpinned-uses", "artipacked"} <= found, found
