"""Run this directory's tests with pytest and exit with its status (the Bazel py_test main)."""

import os
import sys

import pytest

# Not resolved: under Bazel this file is a symlink in the runfiles tree, and
# the tests must run from there to find their data files.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def pytest_args(argv: list[str]) -> list[str]:
    """The test files named in argv (relative to this directory), else the whole directory."""
    files = [os.path.join(TESTS_DIR, arg) for arg in argv if arg.endswith(".py")]
    options = [arg for arg in argv if not arg.endswith(".py")]
    return [*(files or [TESTS_DIR]), "-p", "no:cacheprovider", *options]


if __name__ == "__main__":
    sys.exit(pytest.main(pytest_args(sys.argv[1:])))
