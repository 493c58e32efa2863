"""The product's version: the one source for build_info (tools/rules/buildinfo) and the binaries.

MODULE.bazel's module() cannot load this file; its version is kept equal by
//tools/rules/buildinfo:version_test.
"""

VERSION = "0.1.0"
