"""The stack's images, for every target that brings the stack up (deploy/, tools/bench)."""

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
    "//tools/docker:engine.sh",
] + STACK_LOADERS
