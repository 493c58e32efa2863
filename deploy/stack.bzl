"""The stack's images, for every target that brings the stack up (deploy/, tools/dev/bench), and the
stack tests' common shape."""

load("@rules_python//python:defs.bzl", "py_test")

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
    "//tools/rules/docker:engine.sh",
] + STACK_LOADERS

def stack_test(name, srcs, data = [], deps = [], **kwargs):
    """A test against a stack of its own in a real Docker engine (deploy/stack_harness.py).

    Its arguments are the load generator's path, then the image loaders' (STACK_LOADERS).
    Unsandboxed: an engine it may start must outlive it. Its stack is a Compose project of its own,
    on ports of its own, so it runs beside the other stack tests.

    Args:
      name: the test's name.
      srcs: its sources; the first is the main.
      data: run-time files besides the stack's.
      deps: libraries besides the stack harness.
      **kwargs: passed on to py_test.
    """
    py_test(
        name = name,
        size = "large",
        srcs = srcs,
        main = srcs[0],
        args = ["$(rootpath //tools/testing/cmd/loadgen)"] + ["$(rootpath %s)" % loader for loader in STACK_LOADERS],
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
        deps = ["//deploy:stack_harness"] + deps,
        **kwargs
    )
