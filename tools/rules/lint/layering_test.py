"""Fails when two areas of the repo depend on each other, directly or through others.

An area is a top-level directory (`api`, `deploy`, `go_service`, …), except that `tools/` counts
as its groups (`tools/rules`, `tools/testing`, `tools/dev`): they have different roles and the
product depends on the first two only. `platforms/` is the rules' configuration (the target
platforms images are built for), kept at the top level where Bazel users look for `--platforms`
targets: it counts with tools/rules. The root package (`//:…`: MODULE.bazel, version.bzl, the
lint and gazelle aggregators) is the workspace itself and is left out of the graph.

A dependency is any label a BUILD or .bzl file of one area names in another: a `load`, a `deps` or
`data` entry, `$(rootpath …)`. `visibility` lists are not dependencies and are skipped. Scripts
that call each other by path (tools/bazel running tools/dev/offline/prepare) are not seen: the
wrapper is the workspace's entry point, outside every area. Beyond cycles, FORBIDDEN and DEV say
which directions are never allowed.
The files come as arguments (//:lint_srcs, the test's declared inputs).
"""

import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

# Directories whose subdirectories are areas of their own, and directories counted with another
# area (see the module docstring).
SPLIT = ("tools",)
SAME_AREA = {"platforms": "tools/rules"}
# Labels that name Bazel's built-in settings, not a directory of the repo.
BAZEL_PSEUDO_PACKAGES = ("command_line_option", "conditions")
# Which areas each area may not depend on at all, whatever the graph's cycles: the build rules
# depend on no other area (every area loads them), the shared test machinery only on the rules, and
# nothing but the developer tools and the root package depends on the developer tools.
FORBIDDEN = {
    "tools/rules": lambda other: True,
    "tools/testing": lambda other: other != "tools/rules",
}
DEV = "tools/dev"

_LABEL = re.compile(r'"@?//([A-Za-z0-9_./-]*)[:"]')
_VISIBILITY = re.compile(r"visibility\s*=\s*\[[^\]]*\]", re.S)
_COMMENT = re.compile(r"#[^\n]*")

Edges = Mapping[str, Mapping[str, set[str]]]


def area(package: str) -> str | None:
    """The area of a package path ("deploy/nginx" -> "deploy"); None for the root package and
    for Bazel's own pseudo-packages (`//command_line_option`, `//conditions`)."""
    parts = [p for p in package.split("/") if p and p != "."]
    if parts and parts[0] in BAZEL_PSEUDO_PACKAGES:
        return None
    if not parts:
        return None
    if parts[0] in SPLIT and len(parts) > 1 and "." not in parts[1]:
        return "/".join(parts[:2])
    return SAME_AREA.get(parts[0], parts[0])


def dependencies(files: Mapping[str, str]) -> Edges:
    """{area: {other area: {files naming it}}} for files {workspace path: Starlark text}."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path, text in files.items():
        source = area(str(Path(path).parent))
        if source is None:
            continue
        text = _VISIBILITY.sub("", _COMMENT.sub("", text))
        for match in _LABEL.finditer(text):
            target = area(match.group(1))
            if target is not None and target != source:
                edges[source][target].add(path)
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components with more than one area (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def forbidden(edges: Edges) -> list[str]:
    """One line per dependency FORBIDDEN or on DEV, naming the files that make it."""
    found = []
    for source in sorted(edges):
        for target in sorted(edges[source]):
            rule = FORBIDDEN.get(source)
            if (rule is not None and rule(target)) or (target == DEV and source != DEV):
                found.append(f"  {source} -> {target}: {', '.join(sorted(edges[source][target]))}")
    return found


def explain(edges: Edges, component: Iterable[str]) -> str:
    """One line per dependency inside a cycle, naming the files that make it."""
    members = set(component)
    lines = []
    for source in sorted(members):
        for target in sorted(set(edges.get(source, {})) & members):
            lines.append(f"  {source} -> {target}: {', '.join(sorted(edges[source][target]))}")
    return "\n".join(lines)


def starlark_files(paths: Iterable[str]) -> dict[str, str]:
    """{path: text} of the BUILD and .bzl files among paths."""
    return {
        p: Path(p).read_text()
        for p in paths
        if Path(p).name in ("BUILD", "BUILD.bazel") or p.endswith(".bzl")
    }


@pytest.mark.parametrize(
    ("files", "want"),
    [
        pytest.param(
            {
                "deploy/BUILD.bazel": 'load("//tools/dev/bench:x.bzl", "x")',
                "tools/dev/bench/BUILD.bazel": 'load("//deploy:stack.bzl", "STACK")',
            },
            [["deploy", "tools/dev"]],
            id="two-way",
        ),
        pytest.param(
            {
                "api/BUILD.bazel": 'data = ["//go_service/cmd/go_service"]',
                "go_service/a/BUILD.bazel": 'data = ["//py_service:server"]',
                "py_service/BUILD.bazel": 'data = ["//api:openapi.json"]',
            },
            [["api", "go_service", "py_service"]],
            id="through a third area",
        ),
        pytest.param(
            {
                "deploy/BUILD.bazel": 'data = ["$(rootpath //tools/testing/cmd/loadgen)"]',
                "tools/testing/BUILD.bazel": 'visibility = [\n "//deploy:__pkg__",\n]',
            },
            [],
            id="visibility is not a dependency",
        ),
        pytest.param(
            {
                "tools/dev/BUILD.bazel": '# "//deploy:stack.bzl"\nload("//tools/rules:a.bzl")',
                "deploy/BUILD.bazel": 'load("//tools/dev:x.bzl", "x")',
            },
            [],
            id="comments are not dependencies",
        ),
        pytest.param(
            {
                "go_service/BUILD.bazel": 'load("//:version.bzl", "VERSION")',
                "tools/rules/lint/BUILD.bazel": 'data = ["//:lint_srcs"]',
                "tools/rules/oci/BUILD.bazel": 'data = ["//go_service:image"]',
            },
            [],
            id="the root package is outside the graph",
        ),
    ],
)
def test_cycles_between_areas(files: dict[str, str], want: list[list[str]]) -> None:
    assert cycles(dependencies(files)) == want


@pytest.mark.parametrize(
    ("files", "want"),
    [
        pytest.param(
            {"tools/rules/a/BUILD.bazel": 'data = ["//deploy:x"]'}, 1, id="rules on deploy"
        ),
        pytest.param(
            {"tools/testing/BUILD.bazel": 'data = ["//go_service:x"]'}, 1, id="testing on a product"
        ),
        pytest.param(
            {"tools/testing/BUILD.bazel": 'load("//tools/rules/lint:defs.bzl", "x")'},
            0,
            id="testing on rules",
        ),
        pytest.param(
            {"deploy/BUILD.bazel": 'data = ["//tools/dev/bench:x"]'}, 1, id="on dev tools"
        ),
        pytest.param(
            {"tools/dev/ci/BUILD.bazel": 'data = ["//go_service:image"]'}, 0, id="dev on a product"
        ),
        pytest.param(
            {"tools/rules/oci/BUILD.bazel": 'x = {"//command_line_option:platforms": 1}'},
            0,
            id="a Bazel setting is not an area",
        ),
        pytest.param(
            {"BUILD.bazel": 'data = ["//tools/dev/bench:x", "//tools/rules/lint:y"]'},
            0,
            id="the root package may use anything",
        ),
    ],
)
def test_forbidden_dependencies(files: dict[str, str], want: int) -> None:
    assert len(forbidden(dependencies(files))) == want


def test_the_repo_has_no_forbidden_dependency() -> None:
    found = forbidden(dependencies(starlark_files(sys.argv[1:])))
    assert not found, "dependencies the layering forbids:\n" + "\n".join(found)


def test_the_repo_has_no_cycle_between_areas() -> None:
    paths = sys.argv[1:]
    files = starlark_files(paths)
    assert len(files) > 20, f"too few BUILD/.bzl files among the arguments: {len(files)}"
    edges = dependencies(files)
    found = cycles(edges)
    assert not found, "areas that depend on each other:\n" + "\n".join(
        explain(edges, component) for component in found
    )


if __name__ == "__main__":
    # The arguments are the repo's files, read by the test above, not pytest's.
    sys.exit(pytest.main([__file__, "-p", "no:cacheprovider", "-v"]))
