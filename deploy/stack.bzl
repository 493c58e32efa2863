"""The stack's images, for every target that brings the stack up (deploy/, tools/dev/bench), and the
stack tests' common shape."""

load("//tools/rules/python:pytest.bzl", "pytest_test")

# Every image the stack runs, as oci_load targets (bazel run one to load it alone).
STACK_LOADERS = [
    "//go_service:load",
    "//py_service:load",
    "//deploy/nginx:load",
    "//deploy/prometheus:load",
    "//deploy/alertmanager:load",
    "//deploy/redis:load",
]

# What deploy/stack.sh needs at run time besides itself.
STACK_DATA = [
    "//deploy:compose.yaml",
    "//deploy:stack.env",
    "//deploy/redis:users_acl.sh",
    "//tools/rules/docker:engine.sh",
] + STACK_LOADERS

def stack_test(name, srcs, data = [], deps = [], **kwargs):
    """A pytest test against a stack of its own in a real Docker engine (deploy/stack_harness.py).

    The harness finds the load generator in LOADGEN and the image loaders (STACK_LOADERS) in
    STACK_LOADERS. Unsandboxed: an engine it may start must outlive it. Its stack is a Compose
    project of its own, on ports of its own, so it runs beside the other stack tests. Verbose and
    uncaptured: the test log shows each test and the timings the tests print as they run.

    Args:
      name: the test's name.
      srcs: its test files.
      data: run-time files besides the stack's.
      deps: libraries besides the stack harness.
      **kwargs: passed on to pytest_test.
    """
    pytest_test(
        name = name,
        size = "large",
        srcs = srcs,
        args = [
            "--capture=no",
            "--verbose",
        ],
        env = {
            "LOADGEN": "$(rootpath //tools/testing/cmd/loadgen)",
            "STACK_LOADERS": " ".join(["$(rootpath %s)" % loader for loader in STACK_LOADERS]),
        },
        data = STACK_DATA + [
            "//deploy:stack.sh",
            "//tools/testing/cmd/loadgen",
        ] + data,
        env_inherit = ["HOME"],
        tags = [
            "e2e",
            "no-sandbox",
            "requires-docker",
        ],
        deps = [
            "//deploy:stack_harness",
            "//tools/testing/python:support",
        ] + deps,
        **kwargs
    )
