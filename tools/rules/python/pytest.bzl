"""`pytest_test`: a py_test whose tests are pytest functions, run by one shared main."""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

_MAIN = Label("//tools/rules/python:pytest_main.py")

def pytest_test(name, srcs, args = [], deps = [], **kwargs):
    """Runs pytest on `srcs` (tools/rules/python/pytest_main.py is the main).

    Every file in `srcs` is a test file pytest collects; helpers belong in a py_library in `deps`
    (a conftest.py there is found as pytest finds it beside the tests). Inputs a test needs (paths
    of programs, images) go in `env` with $(rootpath): the arguments are pytest's, so that
    `--test_arg` and `--test_filter` reach it.

    Args:
      name: the test's name.
      srcs: the test files.
      args: more pytest options.
      deps: libraries the tests import; pytest is added.
      **kwargs: passed on to py_test (size, data, env, tags, ...).
    """
    py_test(
        name = name,
        srcs = srcs + [_MAIN],
        main = _MAIN,
        args = ["$(rootpath %s)" % src for src in srcs] + args,
        deps = deps + [requirement("pytest")],
        **kwargs
    )
