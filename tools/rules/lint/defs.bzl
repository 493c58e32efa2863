"""`lint_srcs`: the files the lint tests read, declared package by package.

Every BUILD file calls `lint_srcs()`. The filegroup it makes holds the package's own files (all of
them but the kinds no linter reads) and the `lint_srcs` of its direct subpackages, so the root
package's `//:lint_srcs` is every such file of the repo. A package that does not call it breaks the
build of its parent's group (a missing target), so none is left out unnoticed. The lint tests
depend on `//:lint_srcs` like on any input: Bazel reruns them when one of those files changes, and
serves them from its cache otherwise.

The same call makes `all_files`, built the same way but of every file of the tree (generated and
ignored files aside): `//:all_files` is what a test that checks paths against the tree reads
(//docs:links_test), so that it reruns when any file comes or goes.
"""

# Never committed (.gitignore): Bazel's links, tools/bazel's rc file, caches, rendered manifests.
_NOT_IN_TREE = [
    "bazel-*/**",
    ".bazelrc.offline",
    ".bazelrc.user",
    ".git/**",
    "MODULE.bazel.lock",
    "**/__pycache__/**",
    "**/*.pyc",
    ".ruff_cache/**",
    ".pytest_cache/**",
    "prod.yaml",
    "dev.yaml",
]

# Files no linter here reads (each test picks its own kinds out of the rest, by name or #! line).
_NOT_LINTED = [
    "**/*.go",
    "**/*.in",
    "**/*.json",
    "**/*.md",
    "**/*.mod",
    "**/*.png",
    "**/*.sum",
    "**/*.txt",
    "**/*.yaml",
    "**/*.yml",
] + _NOT_IN_TREE

def lint_srcs(name = "lint_srcs", skip_subpackages = [], extra = []):
    """Filegroups of this package's files with its subpackages': `name` (lintable) and `all_files`.

    Args:
      name: the lintable group's name; subpackages must use the same (the default).
      skip_subpackages: subpackages (relative paths) that cannot call lint_srcs, such as a local
        module's directory, whose BUILD files are also read as that module's.
      extra: more files to include in both groups, such as those of a skipped subpackage.
    """
    package = native.package_name()

    # Bazel's convenience links at the root lead into the execroot, which has BUILD files.
    subpackages = [
        sub if not package else package + "/" + sub
        for sub in native.subpackages(include = ["**"], exclude = ["bazel-*", "bazel-*/**"], allow_empty = True)
        if sub not in skip_subpackages
    ]
    native.filegroup(
        name = name,
        srcs = native.glob(["**"], exclude = _NOT_LINTED, allow_empty = True) + extra +
               ["//%s:%s" % (sub, name) for sub in subpackages],
        visibility = ["//:__subpackages__"],
    )
    native.filegroup(
        name = "all_files",
        srcs = native.glob(["**"], exclude = _NOT_IN_TREE, allow_empty = True) + extra +
               ["//%s:all_files" % sub for sub in subpackages],
        visibility = ["//:__subpackages__"],
    )
