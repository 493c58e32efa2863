"""`lint_srcs`: the files the lint tests read, declared package by package.

Every BUILD file calls `lint_srcs()`. The filegroup it makes holds the package's own files (all of
them but the kinds no linter reads) and the `lint_srcs` of its direct subpackages, so the root
package's `//:lint_srcs` is every such file of the repo. A package that does not call it breaks the
build of its parent's group (a missing target), so none is left out unnoticed. The lint tests
depend on `//:lint_srcs` like on any input: Bazel reruns them when one of those files changes, and
serves them from its cache otherwise.
"""

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
    # Generated at the workspace root, never committed: Bazel's links and tools/bazel's rc file.
    "bazel-*/**",
    ".bazelrc.offline",
    ".bazelrc.user",
    ".git/**",
]

def lint_srcs(name = "lint_srcs", skip_subpackages = [], extra = []):
    """A filegroup of this package's lintable files and its subpackages' `lint_srcs`.

    Args:
      name: the group's name; subpackages must use the same (the default).
      skip_subpackages: subpackages (relative paths) that cannot call lint_srcs, such as a local
        module's directory, whose BUILD files are also read as that module's.
      extra: more files to include, such as those of a skipped subpackage.
    """
    package = native.package_name()
    native.filegroup(
        name = name,
        srcs = native.glob(["**"], exclude = _NOT_LINTED, allow_empty = True) + extra + [
            "//%s:%s" % (sub if not package else package + "/" + sub, name)
            # Bazel's convenience links at the root lead into the execroot, which has BUILD files.
            for sub in native.subpackages(include = ["**"], exclude = ["bazel-*", "bazel-*/**"], allow_empty = True)
            if sub not in skip_subpackages
        ],
        visibility = ["//:__subpackages__"],
    )
