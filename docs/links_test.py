"""The docs against the tree: links, paths, section references and README.md's layout table.

The tree is the list of workspace-relative file paths given as arguments (//:all_files, see
docs/BUILD.bazel); a directory exists when a file of the tree lies under it. The rules:

  * links: every relative link or image in a Markdown file names a file or directory of the tree,
    resolved against the Markdown file's directory, and its #fragment a heading of the target
    (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens);
  * paths: every backticked span of a Markdown file that looks like a repo path (it contains a "/",
    or starts with a top-level name) exists, resolved against the file's directory, the repository
    root, or, in a table row, a directory the row's first cell names. `{a,b}` expands, `*` globs;
    spans with a placeholder (`<name>`), a label (`//pkg:target`), a flag, a URL, an absolute or
    home path, or Bazel's output links (`bazel-bin/...`) are not repo paths;
  * references: every `<path>.md, "<Section>"` in any file of the tree (code comments too) names a
    Markdown file of the tree that holds the section's text;
  * mentions: every file of the tree (code, comments, go.mod, JSON, YAML, not only Markdown)
    names only paths and labels that exist: a path that starts with a top-level directory, a
    label `//pkg:file.ext` (its package, and the file when the target has a source extension),
    a `//pkg/...` pattern's package, and a bare `name.sh` (some file of the tree is so named, or
    is its `.tpl`). Files that build made-up trees for their own tests are left out (MADE_UP);
    paths written at run time are listed in GENERATED;
  * layout: README.md's "Layout" table names every top-level directory and every tools/ group (an
    entry directly under tools/, or, for a directory of directories such as tools/rules, each of
    its directories), and every path it names exists.

Each check returns its problems as sentences (an empty list when there are none), so that a test
can show them all at once.
"""

import fnmatch
import itertools
import os
import posixpath
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TREE_FILES = "TREE_FILES"

# Backticked words with a "/" that are not paths of this repo: platforms, media types, Go standard
# packages, Kubernetes API groups. (Words whose first part has a "." and is not in the tree, such as
# `k8s.io/kubernetes` or `prometheus.io/port`, are names of the field too.)
NOT_PATHS = frozenset(
    {
        "linux/amd64",
        "linux/arm64",
        "text/plain",
        "application/json",
        "archive/tar",
        "testing/synctest",
        "container/list",
        "autoscaling/v2",
        "policy/v1",
    }
)

# Tests whose cases are made-up trees, not references to this one.
MADE_UP = frozenset(
    {
        "docs/links_test.py",
        "tools/rules/lint/layering_test.py",
        "tools/dev/ci/affected_test.sh",
        "tools/dev/ci/zizmor_test.py",
    }
)
# Paths that the tree names but that only exist once something runs.
GENERATED = frozenset(
    {
        "deploy/k8s/clusters/prod/manifests.yaml",  # the CD workflow's render, committed by it
        "docs/bench/results",  # bench.py's output directory
    }
)

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# `<path>.md, "<Section>"`, also across a line break in a comment (`#` or `//` before the section).
REFERENCE = re.compile(
    r"(?<![\w./-])(?P<path>[\w./-]*\w\.md|README)(?:#[\w-]*)?\)?\s*,\s*(?:(?:#|//)\s*)?"
    r"\\?\"(?P<section>[^\"\\\n]+)\\?\""
)
NOT_A_PATH = re.compile(r"\s|://|^[-/~$@]|^bazel-|[:@=;,()\"'<>…|]")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
BRACES = re.compile(r"\{([^{}]*)\}")


@dataclass
class Tree:
    """The repo's files (workspace-relative, "/"-separated) and the directories that hold them."""

    files: frozenset[str]
    dirs: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.dirs = frozenset(
            "/".join(parts[:depth])
            for parts in (path.split("/") for path in self.files)
            for depth in range(1, len(parts))
        )

    def exists(self, path: str) -> bool:
        """Whether `path` (normalized, relative to the root; "*" globs) is a file or directory."""
        path = path.rstrip("/")
        if "*" in path:
            return any(fnmatch.fnmatchcase(f, path) for f in self.files | self.dirs)
        return path in self.files or path in self.dirs

    def text(self, path: str) -> str:
        """The file at `path` (relative to the working directory, the runfiles root), as text."""
        return Path(path).read_text(encoding="utf-8", errors="replace")

    def top_level(self) -> set[str]:
        """The names directly under the root: its files and directories."""
        return {path.split("/")[0] for path in self.files}


def resolve(base: str, path: str) -> str | None:
    """`path` relative to directory `base`, normalized; None when it leaves the repository."""
    joined = posixpath.normpath(posixpath.join(base, path))
    return None if joined == ".." or joined.startswith("../") else joined.removeprefix("./")


def expand_braces(token: str) -> list[str]:
    """`a/{b,c}/d` -> [`a/b/d`, `a/c/d`] (every brace group, in order)."""
    match = BRACES.search(token)
    if not match:
        return [token]
    head, tail = token[: match.start()], token[match.end() :]
    return [x for choice in match.group(1).split(",") for x in expand_braces(head + choice + tail)]


def slug(heading: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading; `seen` counts earlier ones, so repeats get -1, -2, ..."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    count = seen.get(text, 0)
    seen[text] = count + 1
    return f"{text}-{count}" if count else text


def anchors(markdown: str) -> set[str]:
    """The #fragments the headings of `markdown` (outside code blocks) can be linked by."""
    seen: dict[str, int] = {}
    return {slug(h, seen) for h in HEADING.findall(FENCE.sub("", markdown))}


def looks_like_path(token: str, top_level: set[str]) -> bool:
    """Whether a backticked span is meant as a path of this repo (see the module's rules)."""
    if NOT_A_PATH.search(token) or token in NOT_PATHS:
        return False
    first = token.split("/")[0]
    if first in top_level:
        return True
    # A first part with a "." of its own names a domain or a file elsewhere (k8s.io/..., v1.2/...).
    return "/" in token and "." not in first.strip(".")


def markdown_files(tree: Tree) -> list[str]:
    """Every Markdown file of the tree, sorted."""
    return sorted(path for path in tree.files if path.endswith(".md"))


def link_problems(tree: Tree, path: str, markdown: str) -> list[str]:
    """Relative links of `markdown` (the file at `path`) that name nothing in the tree."""
    problems = []
    base = posixpath.dirname(path)
    for target in LINK.findall(FENCE.sub("", markdown)):
        if SCHEME.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = resolve(base, file_part) if file_part else path
        if resolved is None or not tree.exists(resolved):
            problems.append(f"{path}: link ({target}) names no file or directory of the tree")
        elif fragment and resolved.endswith(".md"):
            text = markdown if resolved == path else tree.text(resolved)
            if fragment not in anchors(text):
                problems.append(f"{path}: link ({target}): {resolved} has no heading #{fragment}")
    return problems


def row_bases(line: str, base: str) -> list[str]:
    """The directories a table row's first cell names (its other cells' paths may be under them)."""
    if not line.lstrip().startswith("|"):
        return []
    first_cell = line.strip().strip("|").split("|")[0]
    return [
        resolved
        for token in CODE.findall(first_cell)
        for candidate in expand_braces(token)
        for place in {base, ""}
        if (resolved := resolve(place, candidate)) is not None
    ]


def path_problems(tree: Tree, path: str, markdown: str) -> list[str]:
    """Backticked spans of `markdown` (the file at `path`) that look like paths and do not exist."""
    problems = []
    base = posixpath.dirname(path)
    top_level = tree.top_level()
    for line in FENCE.sub("", markdown).splitlines():
        bases = [base, "", *row_bases(line, base)]
        for token in CODE.findall(line):
            for candidate in expand_braces(token):
                if not looks_like_path(candidate, top_level):
                    continue
                places = (resolve(b, candidate) for b in bases)
                if not any(p is not None and tree.exists(p) for p in places):
                    problems.append(f"{path}: `{token}`: no {candidate} in the tree")
    return problems


def reference_problems(tree: Tree, path: str, text: str) -> list[str]:
    """`<path>.md, "<Section>"` references in `text` (the file at `path`) that name a missing file
    or section."""
    problems = []
    for match in REFERENCE.finditer(text):
        name = "README.md" if match["path"] == "README" else match["path"]
        places = [resolve(posixpath.dirname(path), name), resolve("", name)]
        target = next((p for p in places if p is not None and p in tree.files), None)
        if target is None:
            problems.append(f"{path}: {match[0]!r} names no Markdown file of the tree")
        elif match["section"] not in tree.text(target):
            problems.append(f"{path}: {match[0]!r}: {target} has no {match['section']!r}")
    return problems


def table_after(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after `heading` (a line of its own), header rows left out."""
    lines = FENCE.sub("", markdown).splitlines()
    if heading not in lines:
        return []
    rows = itertools.dropwhile(
        lambda line: not line.startswith("|"), lines[lines.index(heading) + 1 :]
    )
    table = list(itertools.takewhile(lambda line: line.startswith("|"), rows))
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table[2:]]


def tools_groups(tree: Tree) -> set[str]:
    """tools/'s entries; for a directory of directories (no file of its own), its directories."""
    groups = set()
    for entry in {"/".join(p.split("/")[:2]) for p in tree.files if p.startswith("tools/")}:
        if entry == "tools/BUILD.bazel":
            continue
        inner = {
            tuple(p[len(entry) + 1 :].split("/")) for p in tree.files if p.startswith(entry + "/")
        }
        if inner and all(len(parts) > 1 for parts in inner):
            groups |= {f"{entry}/{parts[0]}" for parts in inner}
        else:
            groups.add(entry)
    return groups


def layout_problems(tree: Tree, readme: str) -> list[str]:
    """What README.md's "## Layout" table leaves out of the tree, or names that is not in it."""
    rows = table_after(readme, "## Layout")
    if not rows:
        return ["README.md: no table after a '## Layout' heading"]
    listed = [
        candidate.rstrip("/")
        for row in rows
        for token in CODE.findall(row[0])
        for candidate in expand_braces(token)
    ]
    problems = [f"README.md layout: `{p}` is not in the tree" for p in listed if not tree.exists(p)]
    directories = {p.split("/")[0] for p in tree.files if "/" in p}
    for needed in sorted(directories | tools_groups(tree)):
        if not any(p == needed or p.startswith(needed + "/") for p in listed):
            problems.append(f"README.md layout: no row for {needed}")
    return problems


SOURCE_EXTENSION = re.compile(r"\.(sh|py|go|bzl|json|ya?ml|conf|lua|md|tpl|txt|toml|mod)$")
# A placeholder path component, such as OVERLAY in deploy/k8s/overlays/OVERLAY.
PLACEHOLDER = re.compile(r"(^|/)[A-Z][A-Z_]*(/|$)")


def mention_patterns(tree: Tree) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Paths under a top-level directory, `//` labels into one, and bare `*.sh` names."""
    top = "|".join(sorted(re.escape(t) for t in {p.split("/")[0] for p in tree.files if "/" in p}))
    path = re.compile(rf"(?<![\w./@:$~-])((?:{top})/[\w./-]*[\w/])")
    label = re.compile(rf"(?<![\w@:/.-])//((?:{top})(?:/[\w.-]+)*)?(?::([\w./+-]*\w))?")
    bare = re.compile(r"(?<![\w./:$-])([\w-]+\.sh)\b(?![/-])")
    return path, label, bare


def mention_problems(tree: Tree, path: str, text: str) -> list[str]:
    """Paths, labels and script names in `text` (any file of the tree, at `path`) that the tree
    does not have."""
    if path in MADE_UP:
        return []
    problems = []
    path_re, label_re, bare_re = mention_patterns(tree)
    names = {posixpath.basename(f) for f in tree.files}
    for match in path_re.finditer(text):
        named = match[1].rstrip("/.")
        if not (tree.exists(named) or named in GENERATED or PLACEHOLDER.search(named)):
            problems.append(f"{path}: names {named}, which is not in the tree")
    for match in label_re.finditer(text):
        package, target = (match[1] or "").removesuffix("/..."), match[2]
        if package and package not in tree.dirs:
            problems.append(f"{path}: {match[0]}: no package {package}")
        elif (
            target
            and SOURCE_EXTENSION.search(target)
            and posixpath.join(package, target) not in tree.files
        ):
            problems.append(f"{path}: {match[0]}: no file {target} in //{package}")
    for match in bare_re.finditer(text):
        if match[1] not in names and match[1] + ".tpl" not in names:
            problems.append(f"{path}: names {match[1]}, and no file of the tree is so named")
    return problems


MARKDOWN_CHECKS = {"links": link_problems, "paths": path_problems}


WHOLE_TREE_CHECKS = {"references": reference_problems, "mentions": mention_problems}


def all_problems(tree: Tree, check: str) -> Iterator[str]:
    """The problems one check ("links", "paths", "references", "mentions") finds in the tree."""
    if check in WHOLE_TREE_CHECKS:
        for path in sorted(tree.files):
            yield from WHOLE_TREE_CHECKS[check](tree, path, tree.text(path))
        return
    for path in markdown_files(tree):
        yield from MARKDOWN_CHECKS[check](tree, path, tree.text(path))


@pytest.fixture(scope="session")
def tree() -> Tree:
    """The tree named on the command line (main passes it on in TREE_FILES, one path a line)."""
    # $(rootpaths) writes the root package's files as ./NAME.
    lines = os.environ.get(TREE_FILES, "").split("\n")
    files = frozenset(posixpath.normpath(line) for line in lines if line)
    if not files:
        pytest.fail("no files given: run as //docs:links_test (args: //:all_files)")
    return Tree(files)


# The repository's docs.


@pytest.mark.parametrize("check", ["links", "paths", "references", "mentions"])
def test_the_docs_name_only_what_the_tree_has(tree: Tree, check: str) -> None:
    problems = list(all_problems(tree, check))
    assert not problems, "\n".join(problems)


def test_the_readme_layout_table_matches_the_tree(tree: Tree) -> None:
    problems = layout_problems(tree, tree.text("README.md"))
    assert not problems, "\n".join(problems)


# The checks themselves, on a small made-up tree: each finds what it is for.

SMALL = Tree(
    frozenset(
        {
            "README.md",
            "docs/guide.md",
            "api/openapi.json",
            "tools/bazel",
            "tools/rules/oci/defs.bzl",
            "tools/testing/BUILD.bazel",
            "tools/testing/cmd/loadgen/main.go",
        }
    )
)


@pytest.mark.parametrize(
    ("check", "markdown", "found"),
    [
        ("links", "[api](../api/openapi.json) [tools](../tools/rules/)", []),
        ("links", "[gone](../api/gone.json)", ["link (../api/gone.json) names no file"]),
        ("links", "[up](../../outside.md)", ["link (../../outside.md) names no file"]),
        ("links", "[web](https://bazel.build/docs) [mail](mailto:x@example.org)", []),
        ("links", "# A `Title` (here)\n[self](#a-title-here)", []),
        ("links", "# Title\n[self](#other)", ["has no heading #other"]),
        ("links", "```sh\n[not a link](nowhere)\n```", []),
        ("paths", "`api/openapi.json`, `tools/bazel`, `../tools/rules/oci/defs.bzl`", []),
        ("paths", "`tools/{bazel,rules}`, `tools/rules/{oci,}`", []),
        ("paths", "`tools/rules/oci/*.bzl`, `api`", []),
        ("paths", "`api/contract.json`", ["no api/contract.json"]),
        ("paths", "`tools/{bazel,wrapper}`", ["no tools/wrapper"]),
        ("paths", "`tools/dev/bench/`", ["no tools/dev/bench/"]),
        ("paths", "| `tools/testing/` | `cmd/loadgen` |", []),
        ("paths", "| `tools/bazel` | `cmd/loadgen` |", ["no cmd/loadgen"]),
        ("paths", "`//tools:bazel`, `bazel-bin/x/y`, `<pkg>/image`, `/usr/bin/python3`", []),
        ("paths", "`--flag=a/b`, `$HOME/x`, `~/.cache/x`, `http://127.0.0.1/x`, `a / b`", []),
        ("paths", "`linux/amd64`, `k8s.io/kubernetes`, `sys.path`", []),
        ("paths", "```sh\ntools/gone\n`tools/gone`\n```", []),
    ],
)
def test_links_and_paths_are_checked(check: str, markdown: str, found: list[str]) -> None:
    problems = MARKDOWN_CHECKS[check](SMALL, "docs/guide.md", markdown)
    assert len(problems) == len(found), problems
    for problem, expected in zip(problems, found, strict=True):
        assert expected in problem


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see api/openapi.json and tools/rules/oci/ and //tools/testing/cmd/loadgen", []),
        ('deps = ["//tools/rules/oci:defs.bzl", "//tools/testing/..."]', []),
        ("//visibility:public //nolint:x https://host/tools/gone x.y/api/gone", []),
        ("`deploy/k8s/overlays/OVERLAY` $HOME/tools/gone ~/api/gone", []),
        ("checked by api/metrics_vocabulary_test.py", ["names api/metrics_vocabulary_test.py"]),
        ("built by //tools/testing/cmd:build.sh", ["no file build.sh in //tools/testing/cmd"]),
        ("see //tools/gone:x and //tools/...", ["no package tools/gone"]),
        ("once per machine (controlplane.sh)", ["names controlplane.sh, and no file"]),
        ("load.sh, from its template", []),
        ("run.sh, from nowhere", ["names run.sh, and no file"]),
    ],
)
def test_mentions_in_any_file_are_checked(text: str, found: list[str]) -> None:
    tree = Tree(SMALL.files | {"tools/rules/oci/load.sh.tpl"})
    problems = mention_problems(tree, "tools/x.go", text)
    assert len(problems) == len(found), problems
    for problem, expected in zip(problems, found, strict=True):
        assert expected in problem


MD = ".md"


def test_references_name_a_file_and_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/guide.md").write_text("# Guide\n\n## Platforms\n")
    tree = Tree(frozenset({"docs/guide.md", "tools/bazel"}))
    # Spelled with {MD} so that this file holds no reference itself.
    good = f'# see (docs/guide{MD}, "Platforms") and (guide{MD}, \\"Platforms\\")'
    assert reference_problems(tree, "docs/x.py", good) == []
    bad = f'# (docs/gone{MD}, "Platforms"); (docs/guide{MD},\n# "Timings"); (README, "Layout")'
    problems = reference_problems(tree, "tools/bazel", bad)
    assert len(problems) == 3, problems
    assert "names no Markdown file" in problems[0]
    assert "has no 'Timings'" in problems[1]
    assert "names no Markdown file" in problems[2]


LAYOUT = """# x

## Layout

| path | what |
|---|---|
| `README.md`, `api/` | the contract |
| `docs/` | the pages |
| `tools/bazel`, `tools/rules/oci/` | the wrapper; image rules |
| `tools/testing/` | test machinery |
"""


def test_the_layout_check_finds_missing_rows_and_paths() -> None:
    assert layout_problems(SMALL, LAYOUT) == []
    missing_row = LAYOUT.replace("| `tools/testing/` | test machinery |\n", "")
    assert layout_problems(SMALL, missing_row) == ["README.md layout: no row for tools/testing"]
    missing_dir = LAYOUT.replace("`README.md`, `api/`", "`README.md`")
    assert layout_problems(SMALL, missing_dir) == ["README.md layout: no row for api"]
    wrong_path = LAYOUT.replace("`docs/`", "`docs/`, `doc/`")
    assert layout_problems(SMALL, wrong_path) == ["README.md layout: `doc` is not in the tree"]
    assert layout_problems(SMALL, "# x\n") == ["README.md: no table after a '## Layout' heading"]


def test_tools_groups_are_the_entries_of_tools_and_of_its_directories_of_directories() -> None:
    assert tools_groups(SMALL) == {"tools/bazel", "tools/rules/oci", "tools/testing"}


if __name__ == "__main__":
    os.environ[TREE_FILES] = "\n".join(sys.argv[1:])
    sys.exit(pytest.main([__file__, "-p", "no:cacheprovider", "-v"]))
