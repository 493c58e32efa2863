"""The main of every pytest_test (//tools/rules/python:pytest.bzl): runs pytest on the test files
the rule names and exits with its status.

argv: the test files (paths in the runfiles tree, which is the working directory), then pytest
options (`tools/bazel test --test_arg=-x`). Bazel's --test_filter (TESTBRIDGE_TEST_ONLY) becomes a
-k expression; commas separate alternatives: `--test_filter=sigterm,slow_clients`. Pytest writes
no cache into the runfiles tree.
"""

from __future__ import annotations

import os
import sys

import pytest


def pytest_args(argv: list[str], test_filter: str) -> list[str]:
    """pytest.main's arguments for this runner's argv and a --test_filter value ("" for none)."""
    args = [*argv, "-p", "no:cacheprovider"]
    patterns = [p.strip() for p in test_filter.split(",") if p.strip()]
    if patterns:
        args += ["-k", " or ".join(patterns)]
    return args


if __name__ == "__main__":
    sys.exit(pytest.main(pytest_args(sys.argv[1:], os.environ.get("TESTBRIDGE_TEST_ONLY", ""))))
